/**
 * The RFC 3161 ledger: a TimeStampToken from a Time-Stamp Authority over HTTP (TSA_URL), whose message
 * imprint is the checkpoint hash. Each token is verified (chain to the configured TSA certificates, imprint,
 * nonce, EKU) before it is accepted as a receipt. Network code (fetch).
 */
import { fromBase64, toBase64 } from "../log/bytes.ts";
import type { AnchorReceipt, Rfc3161LedgerPolicy } from "../ledgers/receipt.ts";
import { parseNote } from "../log/checkpoint.ts";
import {
  LedgerError,
  type AnchorContext,
  type AnchorOutcome,
  type AnchorRequest,
  type Ledger,
} from "../ledgers/ledger.ts";
import { buildRequest, tokenFromResponse, TsaError, verifyToken } from "../ledgers/rfc3161-token.ts";

export interface Rfc3161LedgerOptions {
  name: string;
  url: string;
  /** Trusted certificates (DER): the TSA's CA and any intermediates. */
  trusted: Uint8Array[];
  timeoutMs?: number;
  randomBytes: (n: number) => Uint8Array;
  /** Extra request headers (e.g. an API key some commercial TSAs ask for). */
  headers?: Record<string, string>;
}

export class Rfc3161Ledger implements Ledger {
  readonly type = "rfc3161" as const;
  readonly name: string;

  constructor(private readonly o: Rfc3161LedgerOptions) {
    this.name = o.name;
  }

  async anchor(req: AnchorRequest, _ctx?: AnchorContext): Promise<AnchorOutcome> {
    const nonce = this.o.randomBytes(8);
    nonce[0] &= 0x7f; // a positive INTEGER
    const body = buildRequest(req.checkpointHash, nonce);
    let res: Response;
    try {
      res = await fetch(this.o.url, {
        method: "POST",
        headers: {
          "content-type": "application/timestamp-query",
          accept: "application/timestamp-reply",
          ...this.o.headers,
        },
        body: body as unknown as BodyInit,
        signal: AbortSignal.timeout(this.o.timeoutMs ?? 15_000),
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      throw new LedgerError(
        this.name,
        `TSA ${this.o.url} unreachable: ${e.name === "TimeoutError" ? "timed out" : (e.cause?.code ?? e.message)}`,
      );
    }
    if (!res.ok) throw new LedgerError(this.name, `TSA ${this.o.url} answered HTTP ${res.status}`);
    let der: Uint8Array;
    try {
      der = new Uint8Array(await res.arrayBuffer());
    } catch (err) {
      throw new LedgerError(this.name, `TSA ${this.o.url}: reading the answer failed: ${(err as Error).message}`);
    }
    try {
      const token = tokenFromResponse(der);
      const info = await verifyToken(token, {
        data: new TextEncoder().encode(parseNote(req.note).text),
        imprint: req.checkpointHash,
        trusted: this.o.trusted,
        nonce,
      });
      return { status: "final", receipt: { type: "rfc3161", token: toBase64(token) }, anchoredAt: info.genTime };
    } catch (err) {
      // A garbled or untrusted answer is retried: the next answer may be fine (and nothing was stored).
      if (err instanceof TsaError) throw new LedgerError(this.name, `TSA ${this.o.url}: ${err.message} [${err.code}]`);
      throw err;
    }
  }

  async refresh(receipt: AnchorReceipt): Promise<AnchorOutcome> {
    if (receipt.type !== "rfc3161") throw new LedgerError(this.name, "not an RFC 3161 receipt", false);
    return { status: "final", receipt };
  }

  policy(): Rfc3161LedgerPolicy {
    return { type: "rfc3161", certificates: this.o.trusted.map(toBase64), url: this.o.url };
  }
}

/** DER certificates from PEM text (one or more CERTIFICATE blocks). */
export function certificatesFromPem(pem: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const m of pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g))
    out.push(fromBase64(m[1].replace(/\s+/g, "")));
  return out;
}
