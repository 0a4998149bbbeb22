#!/usr/bin/env bash
# Prints a gateway Envoy config (connlab's filter loaded) to stdout.
#   gateway.sh "IP[,IP...]" ROUTE_TIMEOUT UPSTREAM_OPTS
# ROUTE_TIMEOUT: Envoy duration ("15s" is Envoy's default, "0s" = none).
# UPSTREAM_OPTS: none | keepalive (cluster TCP keepalive idle 7 s, interval 5 s,
# 2 probes: the seed's EnvoyFilter values) | user-timeout (socket option 18 =
# 10000 ms on upstream connections, the seed's second EnvoyFilter).
set -euo pipefail
ips=${1:?backend IPs} route_timeout=${2:-15s} opts=${3:-none}
endpoints=""
for ip in ${ips//,/ }; do
  endpoints+="        - endpoint: {address: {socket_address: {address: $ip, port_value: 8080}}}"$'\n'
done
case $opts in
  none) cluster_opts="" ;;
  keepalive) cluster_opts="    upstream_connection_options:
      tcp_keepalive: {keepalive_time: 7, keepalive_interval: 5, keepalive_probes: 2}" ;;
  user-timeout) cluster_opts="    upstream_bind_config:
      source_address: {address: 0.0.0.0, port_value: 0}
      socket_options:
      - {level: 6, name: 18, int_value: 10000, description: TCP_USER_TIMEOUT}" ;;
  *) echo "unknown UPSTREAM_OPTS $opts" >&2; exit 2 ;;
esac
cat <<YAML
admin:
  address: {socket_address: {address: 0.0.0.0, port_value: 9901}}
static_resources:
  listeners:
  - name: gateway
    address: {socket_address: {address: 0.0.0.0, port_value: 10000}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: gateway
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format:
                text_format_source:
                  inline_string: "ACCESS %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% up=%UPSTREAM_HOST% dur=%DURATION% diagnosis=%FILTER_STATE(wasm.connlab.diagnosis:PLAIN)%\n"
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: {cluster: backend, timeout: $route_timeout}
          http_filters:
          - name: connlab_http
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: connlab_http
                root_id: connlab_http
                vm_config:
                  vm_id: connlab
                  runtime: envoy.wasm.runtime.v8
                  code: {local: {filename: /wasm/connlab_filter.wasm}}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
$cluster_opts
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
$endpoints
YAML
