# syntax=docker/dockerfile:1
# escape=`
ARG GO_VERSION=1.26
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION:-1.22}-alpine AS Build
ARG TARGETOS TARGETARCH
ENV CGO_ENABLED=0 GOOS=${TARGETOS} `
    GOARCH=$TARGETARCH
RUN --mount=type=cache,target=/root/.cache/go-build --network=none go build -ldflags="-s -w" -o /out/app ./cmd/app
# kiln-lint ignore=KL009
FROM build AS test
FROM scratch
COPY --from=build --chown=65532:65532 /out/app /app
HEALTHCHECK --interval=5s CMD ["/app", "health"]
ENTRYPOINT ["/app"]
