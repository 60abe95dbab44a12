# syntax=docker/dockerfile:1

# Builds the two production binaries into one small image:
#   dunning-worker  the Temporal worker (task queue "dunning")
#   dunning         the CLI; `dunning serve` runs the HTTP intake API
# The container command picks which one runs (see docker-compose.yml).

FROM golang:1.26 AS build
WORKDIR /src

# Module downloads are cached in their own layer so that source edits do not
# re-fetch dependencies.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/ \
        ./cmd/dunning-worker \
        ./cmd/dunning

# Static binaries need no libc: distroless/static carries CA certificates
# (for Stripe, SendGrid and Twilio over TLS) and tzdata, and runs as an
# unprivileged user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/dunning-worker /out/dunning /usr/local/bin/
USER nonroot:nonroot
EXPOSE 8080 8081
# No ENTRYPOINT: each service names its binary as the command.
CMD ["dunning-worker"]
