FROM alpine
RUN <<EOF
set -e
go build .
EOF
COPY <<-"CONF" /etc/app.conf
	key=$v
	CONF
RUN <<A cat > /a && <<'B' cat > /b
a1
A
b1
B
USER 1
