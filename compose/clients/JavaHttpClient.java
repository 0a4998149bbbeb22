// The client role on Java's java.net.http.HttpClient (the JDK of the lab
// image, Debian bookworm's OpenJDK 17; run as a single-file program:
// `java /opt/connlab/clients/JavaHttpClient.java ...`). One HttpClient shared
// by the workers, at the JDK's defaults unless a flag sets a knob: the
// builder's `version` and `connectTimeout`, the request's `timeout`, and the
// pool's system properties jdk.httpclient.keepalive.timeout (seconds,
// default 1200) and jdk.httpclient.connectionPoolSize (0 = no limit), which
// must be set before the client class loads (as `-D` flags would be).
//
// stdout gets connlab-client's lines (one JSON record per request; the lab
// computes the summary), each failed record with `library_error`: the
// exception's class and message with its causes, as a service logs them.
// HttpClient does not say which connection a request used: `reused` and
// `local` come from /proc/net/tcp{,6} (an established connection to the target
// before the request that is still the one after it; one worker only).
import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

public class JavaHttpClient {
    static final String TAG_HEADER = "x-connlab";
    // connlab::client::MAX_RUN.
    static final long MAX_RUN_MS = 600_000;

    public static void main(String[] argv) throws Exception {
        String target = null, path = "/", version = null;
        int requests = 0;
        long[] gaps = new long[0];
        Long connectTimeoutMs = null, timeoutMs = null;
        for (int i = 0; i + 1 < argv.length; i += 2) {
            String v = argv[i + 1];
            switch (argv[i]) {
                case "--target" -> target = v;
                case "--path" -> path = v;
                case "--requests" -> requests = Integer.parseInt(v);
                // One worker: reuse is read from /proc/net/tcp, which cannot
                // tell workers' connections apart.
                case "--connections" -> {
                    if (!v.equals("1")) {
                        System.err.println("java-http-client: --connections must be 1");
                        System.exit(2);
                    }
                }
                case "--gaps-ms" -> gaps = java.util.Arrays.stream(v.split(","))
                        .filter(s -> !s.isEmpty()).mapToLong(Long::parseLong).toArray();
                case "--version" -> version = v;
                case "--connect-timeout-ms" -> connectTimeoutMs = Long.parseLong(v);
                case "--timeout-ms" -> timeoutMs = Long.parseLong(v);
                case "--keepalive-timeout-s" -> System.setProperty("jdk.httpclient.keepalive.timeout", v);
                case "--connection-pool-size" -> System.setProperty("jdk.httpclient.connectionPoolSize", v);
                default -> {
                    System.err.println("java-http-client: unknown flag " + argv[i]);
                    System.exit(2);
                }
            }
        }
        if (target == null || requests <= 0) {
            System.err.println("java-http-client: --target and --requests are required");
            System.exit(2);
        }
        HttpClient.Builder builder = HttpClient.newBuilder();
        if (version != null) builder.version(HttpClient.Version.valueOf(version));
        if (connectTimeoutMs != null) builder.connectTimeout(Duration.ofMillis(connectTimeoutMs));
        HttpClient client = builder.build();
        System.err.printf("java-http-client: java %s, version=%s keepalive.timeout=%s connectionPoolSize=%s -> %s%s%n",
                System.getProperty("java.version"), client.version(),
                System.getProperty("jdk.httpclient.keepalive.timeout", "(default)"),
                System.getProperty("jdk.httpclient.connectionPoolSize", "(default)"), target, path);

        int port = Integer.parseInt(target.substring(target.lastIndexOf(':') + 1));
        URI uri = URI.create("http://" + target + path);
        long started = System.nanoTime();
        for (int seq = 0; seq < requests; seq++) {
            if (gaps.length > 0) Thread.sleep(gaps[seq % gaps.length]);
            if ((System.nanoTime() - started) / 1_000_000 >= MAX_RUN_MS) break;
            HttpRequest.Builder rb = HttpRequest.newBuilder(uri).GET();
            if (timeoutMs != null) rb.timeout(Duration.ofMillis(timeoutMs));
            Set<String> before = established(port);
            double start = ms(started);
            Integer status = null;
            String tag = null, error = null, libraryError = null;
            try {
                HttpResponse<String> response = client.send(rb.build(), HttpResponse.BodyHandlers.ofString());
                status = response.statusCode();
                tag = response.headers().firstValue(TAG_HEADER).orElse(null);
            } catch (IOException e) {
                error = classify(e);
                libraryError = text(e);
            }
            double end = ms(started);
            Set<String> after = established(port);
            String local = null;
            boolean reused = false;
            if (status != null) {
                // The connection the response came on is still established.
                List<String> fresh = new ArrayList<>(after);
                fresh.removeAll(before);
                reused = fresh.isEmpty() && !after.isEmpty();
                local = reused ? after.iterator().next() : (fresh.isEmpty() ? null : fresh.get(0));
            } else if (!before.isEmpty()) {
                // A failed request went out on the pooled connection, if any.
                reused = true;
                local = before.iterator().next();
            }
            System.out.println("{\"type\":\"request\",\"worker\":0,\"seq\":" + seq
                    + ",\"start_ms\":" + start + ",\"end_ms\":" + end
                    + ",\"status\":" + status + ",\"error\":" + error
                    + ",\"local\":" + json(local) + ",\"reused\":" + reused
                    + ",\"tag\":" + json(tag)
                    + (libraryError != null ? ",\"library_error\":" + json(libraryError) : "") + "}");
            System.out.flush();
            if (libraryError != null) System.err.println("java-http-client: request " + seq + ": " + libraryError);
        }
    }

    static double ms(long started) {
        return Math.round((System.nanoTime() - started) / 1000.0) / 1000.0;
    }

    // The lab's class of an HttpClient failure, from the exception and its causes.
    static String classify(IOException e) {
        if (e instanceof HttpConnectTimeoutException) return "{\"kind\":\"connect\",\"errno\":110}";
        if (e instanceof HttpTimeoutException) return "{\"kind\":\"timeout\"}";
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof ConnectException) return "{\"kind\":\"connect\",\"errno\":111}";
            String m = String.valueOf(t.getMessage());
            if (m.contains("Connection reset") || m.contains("Broken pipe")) return "{\"kind\":\"reset\"}";
            // "HTTP/1.1 header parser received no bytes", "EOF reached while reading",
            // "Connection closed": the peer closed before a response.
            if (m.contains("no bytes") || m.contains("EOF") || m.contains("closed")) return "{\"kind\":\"eof\"}";
        }
        return "{\"kind\":\"protocol\"}";
    }

    static String text(Throwable e) {
        StringBuilder s = new StringBuilder(e.toString());
        for (Throwable t = e.getCause(); t != null && t != t.getCause(); t = t.getCause()) {
            s.append(": ").append(t);
        }
        return s.toString();
    }

    static String json(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    // Local ip:port of this namespace's established TCP connections to `port`
    // (/proc/net/tcp and tcp6, where the JDK's dual-stack sockets show IPv4
    // peers as ::ffff:a.b.c.d; addresses are 32-bit words in host order,
    // state 01 = ESTABLISHED).
    static Set<String> established(int port) {
        Set<String> out = new LinkedHashSet<>();
        for (String file : new String[] {"/proc/net/tcp", "/proc/net/tcp6"}) {
            try {
                for (String line : Files.readAllLines(Path.of(file))) {
                    String[] f = line.trim().split("\\s+");
                    if (f.length < 4 || !f[3].equals("01")) continue;
                    String[] remote = f[2].split(":");
                    if (Integer.parseInt(remote[1], 16) != port) continue;
                    String[] local = f[1].split(":");
                    String hex = local[0];
                    // IPv4, or the last word of a v4-mapped IPv6 address.
                    if (hex.length() == 32) {
                        if (!hex.startsWith("0000000000000000FFFF0000")) continue;
                        hex = hex.substring(24);
                    }
                    long ip = Long.parseLong(hex, 16);
                    String addr = (ip & 0xff) + "." + ((ip >> 8) & 0xff) + "." + ((ip >> 16) & 0xff)
                            + "." + ((ip >> 24) & 0xff);
                    out.add(addr + ":" + Integer.parseInt(local[1], 16));
                }
            } catch (IOException | RuntimeException ignored) {
                // No such file: nothing from it (reuse then stays unknown, false).
            }
        }
        return out;
    }
}
