/** Fixtures shared by the providers' unit tests. */

/** A throwaway self-signed certificate (no key anywhere), for caBundle parsing. */
export const testCertificatePem = `-----BEGIN CERTIFICATE-----
MIIBmDCCAT2gAwIBAgIUOUcQDqvsfdKdIChz42h7oUjv5uQwCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVc2VjcmV0LWJpbmRlci10ZXN0LWNhMCAXDTI2MTEyMjA2MzA1
NFoYDzIxMjYxMDI5MDYzMDU0WjAgMR4wHAYDVQQDDBVzZWNyZXQtYmluZGVyLXRl
c3QtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAT2ELH61ibEzphyd8tmG7DF
N68f30kwf+7Stjc8s36cM9mTGfunzsO9/sDcnwqVMN1nCbw77x/rd6dpj364krBO
o1MwUTAdBgNVHQ4EFgQU/5Ntd1df1wOzZUXIitbfsi7vn+EwHwYDVR0jBBgwFoAU
/5Ntd1df1wOzZUXIitbfsi7vn+EwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
AgNJADBGAiEAsER2kSS1emy2wmhGN6ljRwlhOUJ3d75KxBHwdodlwHACIQDedQak
3iaUg7I4QtqkSzwBoA0/S0aRDcqWN7lp1lRtCg==
-----END CERTIFICATE-----`;

/** `caBundle` as the CRD holds it (base64 of PEM). */
export const testCaBundle = Buffer.from(testCertificatePem).toString('base64');
