// The DOM's WebCrypto type names, aliased to Node's `webcrypto` types. @peculiar/x509's
// declarations use these global names; the project compiles without the DOM lib, so without this
// file they would not resolve (and every x509 call would be typed as an error).
import type { webcrypto } from 'node:crypto';

declare global {
  type Crypto = webcrypto.Crypto;
  type CryptoKey = webcrypto.CryptoKey;
  type CryptoKeyPair = webcrypto.CryptoKeyPair;
  type Algorithm = webcrypto.Algorithm;
  type AlgorithmIdentifier = webcrypto.AlgorithmIdentifier;
  type BufferSource = webcrypto.BufferSource;
  type EcdsaParams = webcrypto.EcdsaParams;
  type EcKeyGenParams = webcrypto.EcKeyGenParams;
  type EcKeyImportParams = webcrypto.EcKeyImportParams;
  type RsaHashedImportParams = webcrypto.RsaHashedImportParams;
  type KeyUsage = webcrypto.KeyUsage;
}
