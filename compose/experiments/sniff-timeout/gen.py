#!/usr/bin/env python3
"""sniff-timeout (seed 000) by hand: the two Envoy configs, as JSON.

gen.py DIR CALLER_MODE TIMEOUT_S SERVER_MODE WASM
  CALLER_MODE  sniff: tls_inspector + http_inspector, listener_filters_timeout
               TIMEOUT_S, continue_on_listener_filters_timeout, an HTTP chain
               (matched by ALPN) originating mTLS to the server, a default
               tcp_proxy chain to a plaintext PassthroughCluster (Istio's
               outbound listener for a port of unknown protocol)
               explicit: the HTTP chain only, no listener filters (a port
               named http-* in Istio)
  SERVER_MODE  strict: mTLS required; permissive: tls_inspector, a TLS chain
               and a plaintext chain (Istio's PERMISSIVE)
Writes DIR/caller.json and DIR/server.json; certs are DIR/{ca,caller,server}.{pem,key}.
Caller: :10000 (admin :9901), server: :15006 (admin :9902), backend: :8080.
"""
import json, sys

d, caller_mode, timeout_s, server_mode, wasm = sys.argv[1:]

def addr(port):
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}

def net_wasm(config):
    return {"name": "connlab_net", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
        "config": {"name": "connlab_net", "root_id": "connlab_net",
                   "vm_config": {"vm_id": "connlab", "runtime": "envoy.wasm.runtime.v8",
                                 "code": {"local": {"filename": wasm}}},
                   "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                     "value": json.dumps(config)}}}}

ACCESS = ("ACCESS %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% "
          "chain=%FILTER_CHAIN_NAME% up=%UPSTREAM_HOST% failure=%UPSTREAM_TRANSPORT_FAILURE_REASON% "
          "dfailure=%DOWNSTREAM_TRANSPORT_FAILURE_REASON% conn_term=%CONNECTION_TERMINATION_DETAILS%\n")

def access_log():
    return [{"name": "envoy.access_loggers.stdout", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
        "log_format": {"text_format_source": {"inline_string": ACCESS}}}}]

def hcm(name, cluster):
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": name, "access_log": access_log(),
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"],
                          "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}

def tcp_proxy(name, cluster):
    return {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": name, "cluster": cluster, "access_log": access_log()}}

def cluster(name, port, tls=None):
    c = {"name": name, "type": "STATIC", "connect_timeout": "1s",
         "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
             {"endpoint": {"address": addr(port)}}]}]}}
    if tls:
        c["transport_socket"] = tls
    return c

def tls_certs(node):
    return [{"certificate_chain": {"filename": f"{d}/{node}.pem"},
             "private_key": {"filename": f"{d}/{node}.key"}}]

def validation(san):
    return {"trusted_ca": {"filename": f"{d}/ca.pem"},
            "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"exact": san}}]}

SERVER_ID = "spiffe://cluster.local/ns/lab/sa/server"
CALLER_ID = "spiffe://cluster.local/ns/lab/sa/caller"

upstream_mtls = {"name": "envoy.transport_sockets.tls", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
    "sni": "outbound_.8080_._.server.lab.svc.cluster.local",
    "common_tls_context": {"tls_certificates": tls_certs("caller"),
                           "alpn_protocols": ["istio-http/1.1", "istio"],
                           "validation_context": validation(SERVER_ID)}}}

downstream_mtls = {"name": "envoy.transport_sockets.tls", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
    "require_client_certificate": True,
    "common_tls_context": {"tls_certificates": tls_certs("server"),
                           "validation_context": validation(CALLER_ID)}}}

LISTENER_FILTERS = [
    {"name": "envoy.filters.listener.tls_inspector", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}},
    {"name": "envoy.filters.listener.http_inspector", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"}},
]

ms = int(float(timeout_s) * 1000)
caller_filter = {"events": "all", "sniff_threshold_ms": ms}
http_chain = {"name": "http", "filters": [net_wasm(caller_filter), hcm("caller_http", "server_mtls")]}
caller = {"name": "outbound", "address": addr(10000)}
if caller_mode == "sniff":
    http_chain["filter_chain_match"] = {"transport_protocol": "raw_buffer",
                                        "application_protocols": ["http/1.0", "http/1.1", "h2c"]}
    caller.update({
        "listener_filters": LISTENER_FILTERS,
        "listener_filters_timeout": f"{timeout_s}s",
        "continue_on_listener_filters_timeout": True,
        "filter_chains": [http_chain],
        "default_filter_chain": {"name": "passthrough", "filters": [
            net_wasm(caller_filter), tcp_proxy("passthrough", "PassthroughCluster")]},
    })
elif caller_mode == "explicit":
    caller["filter_chains"] = [http_chain]
else:
    sys.exit(f"CALLER_MODE: sniff | explicit, not {caller_mode}")

server_filter = {"events": "all"}
tls_chain = {"name": "mtls", "filters": [net_wasm(server_filter), hcm("server_mtls", "backend")],
             "transport_socket": downstream_mtls}
server = {"name": "inbound", "address": addr(15006)}
if server_mode == "strict":
    server["listener_filters"] = LISTENER_FILTERS[:1]
    server["filter_chains"] = [tls_chain]
elif server_mode == "permissive":
    tls_chain["filter_chain_match"] = {"transport_protocol": "tls"}
    server["listener_filters"] = LISTENER_FILTERS[:1]
    server["filter_chains"] = [tls_chain, {
        "name": "plaintext", "filter_chain_match": {"transport_protocol": "raw_buffer"},
        "filters": [net_wasm(server_filter), hcm("server_plaintext", "backend")]}]
else:
    sys.exit(f"SERVER_MODE: strict | permissive, not {server_mode}")

def bootstrap(listener, clusters, admin):
    return {"admin": {"address": addr(admin)},
            "static_resources": {"listeners": [listener], "clusters": clusters}}

json.dump(bootstrap(caller, [cluster("server_mtls", 15006, upstream_mtls),
                             cluster("PassthroughCluster", 15006)], 9901),
          open(f"{d}/caller.json", "w"), indent=1)
json.dump(bootstrap(server, [cluster("backend", 8080)], 9902),
          open(f"{d}/server.json", "w"), indent=1)
