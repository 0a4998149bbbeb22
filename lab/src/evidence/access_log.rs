//! Access-log formats connlab's Envoys write and `connlab diagnose` reads.
//! One definition, so the lab's recorded logs and the parser can never
//! disagree.

/// Istio's default TEXT access-log format (meshConfig `accessLogEncoding:
/// TEXT` with no `accessLogFormat`): what `kubectl logs <pod> -c istio-proxy`
/// prints. Istio releases since 1.22 print `%UPSTREAM_CLUSTER_RAW%` where
/// older ones print `%UPSTREAM_CLUSTER%`; the two columns read the same.
pub const ISTIO_TEXT_FORMAT: &str =
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" \
%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \
\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% \
%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \
\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% \
%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% \
%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";
