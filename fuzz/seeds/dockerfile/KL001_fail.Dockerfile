FROM golang:1.26@sha256:0000000000000000000000000000000000000000000000000000000000000001
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV GOCACHE=/root/.cache/go-build
RUN --mount=type=cache,target=/root/.cache/go-build CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /app ./cmd/app
USER 65532
CMD ["/app"]
