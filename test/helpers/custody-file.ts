/**
 * A real kit custody file (anchoring/verifier/verify-custody.ts) built without a database: a small signed log made
 * with the core's own construction (as test/helpers/allocations-file.ts does), one batch and one signed checkpoint,
 * holding a kit's life: its lot registered and released, the kit registered, shipped, received with an excursion,
 * released from quarantine, dispensed, returned, destroyed and witnessed. `steps` reorders or replaces the life.
 */
import { nodeCrypto as c, nodeSigner } from "../../anchoring/adapters/crypto-node.ts";
import { toBase64Url, toHex } from "../../anchoring/log/bytes.ts";
import { checkpointText, signNote, vkeyString } from "../../anchoring/log/checkpoint.ts";
import { buildEntry } from "../../anchoring/log/entry.ts";
import { type BatchHeader, type Envelope, envelopeLeaf, headerLeaf } from "../../anchoring/log/envelope.ts";
import type { EntryKind } from "../../anchoring/log/payloads.ts";
import { MerkleLevels } from "../../anchoring/log/tree.ts";
import { kitBlindHash, lotBlindHash } from "../../anchoring/supply/blind-hash.ts";
import type { Bundle } from "../../anchoring/verifier/bundle.ts";
import type { TrustPolicy } from "../../anchoring/verifier/trust-policy.ts";
import { CUSTODY_FORMAT, type CustodyFile } from "../../anchoring/verifier/verify-custody.ts";

export const ORIGIN = "custody.trialseal.test/log";
const signer = nodeSigner(new Uint8Array(32).fill(9));
export const POLICY: TrustPolicy = {
  format: "trialseal-trust/v1",
  origin: ORIGIN,
  logKeys: [
    { vkey: vkeyString(c, ORIGIN, signer.publicKey), fromSize: 0, untilSize: null, notBefore: null, notAfter: null },
  ],
  ledgers: {},
  maxSkewMs: 300_000,
};
export const POLICY_TEXT = `${JSON.stringify(POLICY, null, 2)}\n`;
export const POLICY_SHA256 = toHex(c.sha256(new TextEncoder().encode(POLICY_TEXT)));

const id = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
export const STUDY = "CUST-1";
export const KIT = "482913";
export const IDS = {
  lot: id(1),
  kit: id(2),
  shipment: id(3),
  destruction: id(4),
  recorder: id(10),
  witness: id(11),
  sponsor: id(12),
  depot: id(13),
};
const nonce = (n: number) => toBase64Url(new Uint8Array(16).fill(n));
export const DISCLOSURE = { kit: IDS.kit, lot: IDS.lot, kitType: "KIT-A", nonce: nonce(1), lotNonce: nonce(2) };
const hex = (n: number) => toHex(new Uint8Array(32).fill(n));

export interface Step {
  kind: EntryKind;
  fields: Record<string, unknown>;
}

/** The kit's life in log order (each a kind and its payload fields, without v and salt). */
export function life(): Step[] {
  return [
    {
      kind: "supply.lot_registered",
      fields: {
        lot: IDS.lot,
        lotNumber: "L-100",
        productHash: hex(1),
        blindHash: lotBlindHash(c, { lot: IDS.lot, kitType: "KIT-A", nonce: nonce(2) }),
        manufacturedOn: "2026-01-10",
        expiresOn: "2030-12-31",
        storageMinTenths: 20,
        storageMaxTenths: 80,
        dailyUnits: 2,
        coaSha256: hex(2),
        coaBytes: 1000,
        coaNameHash: hex(3),
        actor: IDS.depot,
      },
    },
    { kind: "supply.lot_released", fields: { release: id(20), lot: IDS.lot, actor: IDS.sponsor } },
    {
      kind: "supply.kit_registered",
      fields: {
        kit: IDS.kit,
        number: KIT,
        blindHash: kitBlindHash(c, { kit: IDS.kit, lot: IDS.lot, kitType: "KIT-A", nonce: nonce(1) }),
        units: 30,
        labelTokenHash: hex(4),
        actor: IDS.depot,
      },
    },
    {
      kind: "supply.shipment_sent",
      fields: {
        shipment: IDS.shipment,
        number: "SHP-0001",
        depot: "DEPOT-EU",
        site: "S1",
        kits: ["111111", KIT],
        actor: IDS.depot,
      },
    },
    {
      kind: "supply.shipment_received",
      fields: {
        receipt: id(21),
        shipment: IDS.shipment,
        temperatureMinTenths: 40,
        temperatureMaxTenths: 150,
        loggerSha256: null,
        loggerBytes: null,
        loggerNameHash: null,
        excursion: true,
        actor: IDS.recorder,
      },
    },
    {
      kind: "supply.quarantine_decided",
      fields: { decision: id(22), shipment: IDS.shipment, outcome: "release", reasonHash: hex(5), actor: IDS.sponsor },
    },
    {
      kind: "supply.kit_dispensed",
      fields: {
        dispensing: id(23),
        kit: IDS.kit,
        number: KIT,
        subject: "S1-001",
        site: "S1",
        visit: null,
        actor: IDS.recorder,
      },
    },
    {
      kind: "supply.kit_returned",
      fields: {
        return: id(24),
        kit: IDS.kit,
        number: KIT,
        subject: "S1-001",
        unitsReturned: 12,
        unitsDispensed: 30,
        compliancePercent: 90,
        returnedOn: "2026-03-10",
        actor: IDS.recorder,
      },
    },
    {
      kind: "supply.destruction_recorded",
      fields: { destruction: IDS.destruction, site: "S1", kits: [KIT], methodHash: hex(6), actor: IDS.recorder },
    },
    {
      kind: "supply.destruction_witnessed",
      fields: { witness: id(25), destruction: IDS.destruction, actor: IDS.witness },
    },
  ];
}

/** The custody file of `steps` (default: the whole life), every entry sealed in one batch of one signed log. */
export function buildCustodyFile(steps: Step[] = life(), o: { disclosure?: boolean } = {}): CustodyFile {
  let saltNo = 0;
  const entries = steps.map((s, i) => {
    const built = buildEntry(c, s.kind, s.fields as never, toBase64Url(new Uint8Array(16).fill(++saltNo)));
    const envelope: Envelope = {
      v: 1,
      log: ORIGIN,
      seq: i,
      studySeq: i,
      at: new Date(Date.UTC(2026, 2, 1, 9, 0, 0, i)).toISOString(),
      study: STUDY,
      kind: s.kind,
      payloadHash: toHex(built.payloadHash),
    };
    return { payload: built.payload, envelope, leaf: envelopeLeaf(c, envelope).leaf };
  });
  const tree = MerkleLevels.fromLeaves(
    c,
    entries.map((e) => e.leaf),
  );
  const header: BatchHeader = {
    v: 1,
    log: ORIGIN,
    batch: 0,
    first: 0,
    size: entries.length,
    root: toHex(tree.root()),
    sealedAt: "2026-03-01T09:01:00.000Z",
  };
  const log = new MerkleLevels(c);
  log.append(headerLeaf(c, header).leaf);
  const note = signNote(c, checkpointText({ origin: ORIGIN, treeSize: 1, root: log.root() }), ORIGIN, signer);
  const bundles: Bundle[] = entries.map((e, i) => ({
    format: "trialseal-proof/v1",
    payload: e.payload as Record<string, unknown>,
    envelope: e.envelope as unknown as Record<string, unknown>,
    batch: {
      header: header as unknown as Record<string, unknown>,
      leafIndex: i,
      inclusion: tree.inclusionProof(i).map(toHex),
    },
    checkpoints: [{ note, log: { index: 0, treeSize: 1, inclusion: [] }, anchors: [] }],
  }));
  return {
    format: CUSTODY_FORMAT,
    study: STUDY,
    kit: KIT,
    exportedAt: "2026-03-02T10:00:00.000Z",
    trustPolicyText: POLICY_TEXT,
    bundles,
    ...(o.disclosure === false ? {} : { disclosure: { ...DISCLOSURE } }),
  };
}
