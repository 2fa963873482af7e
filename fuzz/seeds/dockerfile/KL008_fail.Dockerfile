FROM golang:1.22-alpine AS build
RUN echo build
FROM alpine:latest
COPY --from=build /etc/os-release /x
