//! Network namespaces with nftables packet loss for the fault tests.
