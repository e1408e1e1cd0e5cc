// The test harness: real registries, a token issuer, a fault-injecting
// proxy, OCI layout fixtures and skopeo, for every test file to import.

export * from './process.js';
export * from './registry.js';
export * from './require.js';
export * from './token-issuer.js';
export * from './oci-layout.js';
export * from './skopeo.js';
export * from './raw.js';
export * from './proxy.js';
