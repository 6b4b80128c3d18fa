# syntax=docker/dockerfile:1

# One Dockerfile builds every program of the module, so the build recipe
# (and the ldflags it stamps) exists once. Pick the program with SERVICE:
#
#   docker build --build-arg SERVICE=apiservice   -t stockquote/apiservice .
#   docker build --build-arg SERVICE=stockservice -t stockquote/stockservice .
#   docker build --build-arg SERVICE=fakestooq    -t stockquote/fakestooq .
#
# deploy/check asserts that the build command below matches the Makefile's
# `build` target (CGO_ENABLED=0, -trimpath, the same -X variables).

ARG GO_VERSION=1.26.8
# The base images, overridable so a machine without a registry can build
# with local stand-ins under their own names (`make test-live` does);
# the defaults are the official images.
ARG GO_IMAGE=golang:${GO_VERSION}-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
WORKDIR /src
# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG SERVICE
ARG VERSION=dev
ARG COMMIT=unknown
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    case "${SERVICE}" in \
      apiservice|stockservice|fakestooq) ;; \
      *) echo "build arg SERVICE must be apiservice, stockservice or fakestooq, got '${SERVICE}'" >&2; exit 1 ;; \
    esac && \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/service ./${SERVICE}

# distroless static: no shell, no package manager, CA certificates and
# tzdata only; the nonroot variant runs as uid/gid 65532.
FROM ${RUNTIME_IMAGE} AS runtime
ARG SERVICE
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="stockquote-${SERVICE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.source="https://github.com/stockquote/stockquote"
COPY --from=build /out/service /service
USER 65532:65532
ENTRYPOINT ["/service"]
