// The Java JSSE referee client: connects, prints READY once the ready text has arrived and one
// VERDICT line saying how the server ended the connection (see referee.py for the protocol).
//
// JSSE is its own judge when run with -Dcom.sun.net.ssl.requireCloseNotify=true: the server's
// close_notify makes read() return -1, and a TCP FIN without it throws an SSLException.

import java.io.FileInputStream;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

public class JsseReferee {
    static void verdict(String what, String detail) {
        System.out.println("VERDICT " + what + " " + detail.replace('\n', ' '));
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        String host = "127.0.0.1", ca = null, tls = "1.3", readyText = "hello";
        int port = 0;
        double timeout = 15;
        boolean closeFirst = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--host": host = args[++i]; break;
                case "--port": port = Integer.parseInt(args[++i]); break;
                case "--ca": ca = args[++i]; break;
                case "--tls": tls = args[++i]; break;
                case "--timeout": timeout = Double.parseDouble(args[++i]); break;
                case "--ready-text": readyText = args[++i]; break;
                case "--close": closeFirst = true; break;
                default: verdict("error", "unknown argument " + args[i]); return;
            }
        }
        KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
        trust.load(null, null);
        try (InputStream in = new FileInputStream(ca)) {
            int n = 0;
            for (Certificate c : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                trust.setCertificateEntry("ca" + n++, c);
            }
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, tmf.getTrustManagers(), null);
        long deadline = System.nanoTime() + (long) (timeout * 1e9);
        SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket();
        try {
            s.connect(new InetSocketAddress(host, port), (int) (timeout * 1000));
            s.setEnabledProtocols(new String[] {"1.2".equals(tls) ? "TLSv1.2" : "TLSv1.3"});
            SSLParameters params = s.getSSLParameters();
            params.setEndpointIdentificationAlgorithm("HTTPS");
            s.setSSLParameters(params);
            s.setSoTimeout((int) (timeout * 1000));
            s.startHandshake();
        } catch (Exception e) {
            verdict("error", "connect: " + e);
            return;
        }
        StringBuilder got = new StringBuilder();
        boolean ready = false;
        byte[] buf = new byte[65536];
        InputStream in = s.getInputStream();
        try {
            while (true) {
                if (ready && closeFirst) {
                    closeFirst = false;
                    s.shutdownOutput();
                }
                int left = (int) Math.max(1, (deadline - System.nanoTime()) / 1_000_000);
                s.setSoTimeout(left);
                int n = in.read(buf);
                if (n < 0) {
                    verdict("close_notify", "read() returned -1");
                    return;
                }
                got.append(new String(buf, 0, n, StandardCharsets.ISO_8859_1));
                if (!ready && got.indexOf(readyText) >= 0) {
                    ready = true;
                    System.out.println("READY");
                    System.out.flush();
                }
            }
        } catch (SocketTimeoutException e) {
            verdict("open", "jsse: still connected at the timeout");
        } catch (SocketException e) {
            String m = String.valueOf(e.getMessage());
            verdict(m.contains("reset") ? "reset" : "error", e.toString());
        } catch (SSLException e) {
            // requireCloseNotify: "Remote host terminated the connection" or "closing inbound
            // before receiving peer's close_notify" for a FIN without close_notify.
            String m = String.valueOf(e.getMessage());
            boolean fin = m.contains("terminated") || m.contains("close_notify") || m.contains("closing inbound");
            verdict(fin ? "bare_fin" : "error", e.toString());
        } finally {
            try { s.close(); } catch (Exception e) { }
        }
    }
}
