FROM alpine:3.20@sha256:0000000000000000000000000000000000000000000000000000000000000001
RUN apk add ca-certificates tzdata
RUN apt-get update && apt-get install -y curl
USER 1000
