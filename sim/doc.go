// Package sim provides a test PKI and real simulated DRM Agent, Rights Issuer, Domain Enforcement
// Agent and OCSP responder that speak ROAP, SCE/RDP and token protocols over HTTP with real
// signatures; used by tests, by the demo and as reference peers.
package sim
