//! The Java JSSE echo peer (tests/peers/JsseEchoServer.java), built by the test run.
