/**
 * RFC 3161 time-stamp requests, responses and tokens (pure: pkijs + asn1js on WebCrypto, so it runs in a
 * browser too). The message imprint is the checkpoint hash, i.e. SHA-256 of the exact signed note text;
 * verification re-hashes the note through pkijs and also compares the imprint explicitly.
 *
 * pkijs pitfalls handled here: checkChain must be true with our trusted certificates (otherwise it passes with
 * no trust anchor); it checks neither the nonce nor the TSA certificate's timeStamping EKU, so we do.
 */
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { bytesEqual, toHex } from "../log/bytes.ts";

const ID_SHA256 = "2.16.840.1.101.3.4.2.1";
const ID_TST_INFO = "1.2.840.113549.1.9.16.1.4";
const ID_SIGNED_DATA = "1.2.840.113549.1.7.2";
const ID_EXT_KEY_USAGE = "2.5.29.37";
const ID_KP_TIME_STAMPING = "1.3.6.1.5.5.7.3.8";

export type TsaErrorCode =
  | "TSA_RESPONSE_MALFORMED"
  | "TSA_REJECTED"
  | "TSA_TOKEN_MALFORMED"
  | "TSA_IMPRINT_MISMATCH"
  | "TSA_NONCE_MISMATCH"
  | "TSA_SIGNATURE_INVALID"
  | "TSA_UNTRUSTED"
  | "TSA_NOT_TIMESTAMPING_CERT";

export class TsaError extends Error {
  constructor(
    readonly code: TsaErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "TsaError";
  }
}

// Copy into a fresh ArrayBuffer: a Buffer (a Uint8Array) may be a view into a larger shared pool.
const ab = (u: Uint8Array): ArrayBuffer => Uint8Array.from(u).buffer as ArrayBuffer;

/** DER TimeStampReq for a SHA-256 imprint, with a nonce, asking for the TSA certificate. */
export function buildRequest(imprint: Uint8Array, nonce: Uint8Array): Uint8Array {
  if (imprint.length !== 32) throw new TsaError("TSA_IMPRINT_MISMATCH", "the imprint must be a 32-byte SHA-256 hash");
  const req = new pkijs.TimeStampReq({
    version: 1,
    messageImprint: new pkijs.MessageImprint({
      hashAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: ID_SHA256 }),
      hashedMessage: new asn1js.OctetString({ valueHex: ab(imprint) }),
    }),
    nonce: new asn1js.Integer({ valueHex: ab(nonce) }),
    certReq: true,
  });
  return new Uint8Array(req.toSchema().toBER(false));
}

/** Parse a TimeStampResp: the DER token when granted, a TsaError otherwise. */
export function tokenFromResponse(der: Uint8Array): Uint8Array {
  let resp: pkijs.TimeStampResp;
  try {
    resp = pkijs.TimeStampResp.fromBER(ab(der));
  } catch {
    throw new TsaError("TSA_RESPONSE_MALFORMED", "the TSA's answer is not a TimeStampResp");
  }
  const status = resp.status.status;
  if (status !== 0 && status !== 1) {
    const text = resp.status.statusStrings?.map((s) => s.valueBlock.value).join("; ");
    throw new TsaError("TSA_REJECTED", `the TSA refused the request (status ${status}${text ? `: ${text}` : ""})`);
  }
  if (!resp.timeStampToken)
    throw new TsaError("TSA_RESPONSE_MALFORMED", "the TSA granted the request but sent no token");
  return new Uint8Array(resp.timeStampToken.toSchema().toBER(false));
}

export interface TokenInfo {
  genTime: Date;
  serial: string;
  nonce: string | null;
  policy: string;
  imprint: Uint8Array;
  /** The TSA's stated accuracy of genTime (null when it states none). */
  accuracyMs: number | null;
}

function parseToken(token: Uint8Array): { signed: pkijs.SignedData; tst: pkijs.TSTInfo } {
  try {
    const asn = asn1js.fromBER(ab(token));
    if (asn.offset === -1) throw new Error("bad BER");
    const ci = new pkijs.ContentInfo({ schema: asn.result });
    if (ci.contentType !== ID_SIGNED_DATA) throw new Error("not SignedData");
    const signed = new pkijs.SignedData({ schema: ci.content });
    if (signed.encapContentInfo.eContentType !== ID_TST_INFO || !signed.encapContentInfo.eContent)
      throw new Error("not a TSTInfo");
    const tst = pkijs.TSTInfo.fromBER(signed.encapContentInfo.eContent.getValue());
    return { signed, tst };
  } catch {
    throw new TsaError("TSA_TOKEN_MALFORMED", "the time-stamp token is not a CMS SignedData with a TSTInfo");
  }
}

function info(tst: pkijs.TSTInfo): TokenInfo {
  return {
    genTime: tst.genTime,
    serial: toHex(new Uint8Array(tst.serialNumber.valueBlock.valueHexView)),
    nonce: tst.nonce ? toHex(new Uint8Array(tst.nonce.valueBlock.valueHexView)) : null,
    policy: tst.policy,
    imprint: new Uint8Array(tst.messageImprint.hashedMessage.valueBlock.valueHexView),
    accuracyMs: tst.accuracy
      ? (tst.accuracy.seconds ?? 0) * 1000 + (tst.accuracy.millis ?? 0) + Math.ceil((tst.accuracy.micros ?? 0) / 1000)
      : null,
  };
}

/** Read a token's TSTInfo without verifying it (for display). */
export function readToken(token: Uint8Array): TokenInfo {
  return info(parseToken(token).tst);
}

const stripZeros = (hex: string) => hex.replace(/^(00)+(?=..)/, "");

/**
 * Verify a token over `data` (the signed note bytes) whose SHA-256 is `imprint`: TSTInfo imprint, CMS
 * signature, the TSA certificate's chain to `trusted` (DER certificates) at genTime, the critical
 * timeStamping EKU, and, when given, the request's nonce.
 */
export async function verifyToken(
  token: Uint8Array,
  o: { data: Uint8Array; imprint: Uint8Array; trusted: Uint8Array[]; nonce?: Uint8Array },
): Promise<TokenInfo> {
  const { signed, tst } = parseToken(token);
  const i = info(tst);
  if (tst.messageImprint.hashAlgorithm.algorithmId !== ID_SHA256)
    throw new TsaError("TSA_IMPRINT_MISMATCH", "the token's imprint is not SHA-256");
  if (!bytesEqual(i.imprint, o.imprint))
    throw new TsaError("TSA_IMPRINT_MISMATCH", "the token time-stamps another hash than this checkpoint's");
  if (o.nonce && stripZeros(i.nonce ?? "") !== stripZeros(toHex(o.nonce)))
    throw new TsaError("TSA_NONCE_MISMATCH", "the token's nonce is not the request's");
  let trustedCerts: pkijs.Certificate[];
  try {
    trustedCerts = o.trusted.map((c) => pkijs.Certificate.fromBER(ab(c)));
  } catch {
    throw new TsaError("TSA_UNTRUSTED", "a trusted TSA certificate in the policy is not a DER certificate");
  }
  let result: pkijs.SignedDataVerifyResult;
  try {
    result = await signed.verify({ signer: 0, data: ab(o.data), trustedCerts, checkChain: true, extendedMode: true });
  } catch (err) {
    const e = err as { code?: number; message?: string; signatureVerified?: boolean | null };
    // pkijs codes: 5 = chain validation failed (signer not trusted), 14 = signature invalid, 15 = TSTInfo check failed.
    if (e.code === 5 || /chain|trusted|certificate/i.test(e.message ?? ""))
      throw new TsaError(
        "TSA_UNTRUSTED",
        `the TSA certificate does not chain to a trusted certificate (${e.message ?? "chain"})`,
      );
    // (The imprint was compared above, so anything else pkijs rejects is a signature that does not hold.)
    throw new TsaError("TSA_SIGNATURE_INVALID", `the token's signature does not verify (${e.message ?? "invalid"})`);
  }
  if (!result.signatureVerified) throw new TsaError("TSA_SIGNATURE_INVALID", "the token's signature does not verify");
  if (!result.signerCertificateVerified)
    throw new TsaError("TSA_UNTRUSTED", "the TSA certificate does not chain to a trusted certificate");
  const cert = result.signerCertificate;
  const eku = cert?.extensions?.find((x) => x.extnID === ID_EXT_KEY_USAGE);
  const usages = (eku?.parsedValue as pkijs.ExtKeyUsage | undefined)?.keyPurposes ?? [];
  if (!eku?.critical || usages.length !== 1 || usages[0] !== ID_KP_TIME_STAMPING) {
    throw new TsaError(
      "TSA_NOT_TIMESTAMPING_CERT",
      "the signing certificate is not a TSA certificate " +
        "(RFC 3161 needs a critical extendedKeyUsage of timeStamping only)",
    );
  }
  return i;
}
