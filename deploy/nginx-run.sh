#!/bin/sh
# nginx's entrypoint in compose.yaml. Writes the dashboard replicas' addresses, as Docker's DNS
# gives them for UPSTREAM_HOST (default `dashboard`), into /etc/nginx/aura-upstream.conf (one
# `server` line each, which deploy/nginx.conf includes), starts nginx, then checks the name
# every UPSTREAM_CHECK_S seconds and reloads nginx when the set of replicas changed (scaled,
# recreated, restarted). Stops with the container: nginx is PID 1.
set -u
name=${UPSTREAM_HOST:-dashboard}
port=${UPSTREAM_PORT:-8080}
every=${UPSTREAM_CHECK_S:-2}
conf=/etc/nginx/aura-upstream.conf

# The IPv4 addresses of $name, sorted, one line; empty when it does not resolve. glibc's
# `getent ahostsv4` (Debian) or busybox's nslookup (Alpine), each bounded by `timeout`.
addresses() {
    { timeout 5 getent ahostsv4 "$name" 2>/dev/null || timeout 5 nslookup "$name" 2>/dev/null; } \
        | grep -Eo '([0-9]{1,3}\.){3}[0-9]{1,3}' | grep -v '^127\.' | sort -u | tr '\n' ' '
}

write_upstream() {
    {
        for address in $1; do
            echo "server $address:$port max_fails=3 fail_timeout=10s;"
        done
        # No replica yet: nginx still starts, answers 502, and is reloaded when one appears.
        [ -n "$1" ] || echo "server 127.0.0.1:$port down;"
    } > "$conf.new" && mv "$conf.new" "$conf"
}

seen=$(addresses)
write_upstream "$seen"
echo "aura-nginx-run: $name is [ $seen]" >&2
(
    while sleep "$every"; do
        now=$(addresses)
        if [ "$now" != "$seen" ]; then
            echo "aura-nginx-run: $name is now [ $now]; reloading nginx" >&2
            write_upstream "$now" && nginx -s reload && seen=$now
        fi
    done
) &
exec nginx -g 'daemon off;'
