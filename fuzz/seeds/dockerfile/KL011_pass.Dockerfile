FROM alpine:3.20@sha256:0000000000000000000000000000000000000000000000000000000000000001
RUN apk add --no-cache ca-certificates tzdata
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/*
USER 1000
