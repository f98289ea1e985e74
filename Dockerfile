# Privalytics server image: a static binary on distroless, running as non-root.
#
#   docker build -t privalytics .
#   docker run -p 8080:8080 -v privalytics-data:/data privalytics
#
# The first start creates the master key in /data (or pass PRIVALYTICS_MASTER_KEY)
# and prints the operator key once. TLS: mount a certificate and key and add
# --tls-cert/--tls-key (or PRIVALYTICS_TLS_CERT/PRIVALYTICS_TLS_KEY).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Pure Go throughout (SQLite is modernc.org/sqlite), so the binary is static.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/privalytics ./cmd/privalytics \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/privalytics /privalytics
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["/privalytics"]
CMD ["serve", "--addr", "0.0.0.0:8080", "--data-dir", "/data"]
