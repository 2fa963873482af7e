FROM golang:1.26@sha256:0000000000000000000000000000000000000000000000000000000000000001 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -trimpath -ldflags "-s -w" -o /app ./cmd/server
FROM scratch
COPY --from=build /app /app
ENTRYPOINT ["/app"]
