/**
 * The drug supply as HL7 FHIR R4 (issue 21, ADR 0062): a `collection` Bundle of
 * - a Medication per kit (identifier: the kit number; code.text: the product as labelled, the blinded name printed on
 *   every kit; status inactive once destroyed or its lot recalled); its `batch` (lot number, expiry) only for a role
 *   that may see which lot a kit is of (supply.view_kit_types at the kit's site, or the study unblinded, ADR 0057);
 * - a MedicationDispense per dispensing: completed, medicationReference to the kit's Medication, subject the
 *   participant's pseudonymous Patient (identifier = subject code, the same urn:uuid fullUrl as the study's FHIR
 *   export, app/exports/fhir.server.ts, so the two bundles name one Patient), quantity in units, whenHandedOver,
 *   performer (display: who dispensed), location (display: the site), the visit, the return (units, date,
 *   compliance) and the ledger entry (seq, leaf hash) as TrialSeal extensions;
 * - the Patients those reference, so every reference resolves inside the bundle.
 * A dispensing (or its return) whose row differs from its ledger entry (accountability.server.ts dispensingDiff,
 * returnDiff) carries a meta.tag `ledger-mismatch` and an extension naming the fields, and no proof reference (seq,
 * leaf hash) as if it were sealed.
 * Site-scoped roles get the kits shipped to their sites and the dispensings there; study-wide roles every kit (depot
 * ones too). Never a kit type or an arm. The export is an audit event.
 */
import { primaryUseFhirMeta } from "../data-sharing/choices-statement.ts";
import { and, eq, inArray } from "drizzle-orm";
import { toHex } from "../../anchoring/log/bytes.ts";
import {
  ledgerEntries,
  participants,
  sites,
  supplyDispensings,
  supplyLots,
  supplyReturns,
  users,
} from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { exportParticipantsDetail, participantIdsOfSubjects } from "../data-sharing/export-access.server.ts";
import { auditActor, tokenLabel } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { uuidV5 } from "../exports/fhir.server.ts";
import { dispensingDiff, loadEntries, returnDiff, supplyExportScope } from "./accountability.server.ts";
import { kitFacts } from "./kit-facts.server.ts";
import { kitLocation } from "./kit-state.ts";

const EXT = "https://trialseal.dev/fhir/StructureDefinition";
const safeId = (s: string) => s.replace(/[^A-Za-z0-9.-]/g, "-").slice(0, 64);

type Resource = Record<string, unknown> & { resourceType: string; id: string };

/** The bundle (permission supply.export; blinded-safe for the principal). */
export async function supplyFhirBundle(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  now = new Date(),
): Promise<Record<string, unknown>> {
  const scope = await supplyExportScope(ctx, principal, studyCode);
  const study = scope.study;
  const siteById = new Map(scope.sites.map((s) => [s.id, s]));
  const siteIds = scope.sites.map((s) => s.id);
  const kits = (await kitFacts(ctx.db, study.id, { all: true })).filter((k) =>
    k.shipment ? siteById.has(k.shipment.siteId) : scope.studyWide,
  );
  const lots = new Map(
    (
      await ctx.db
        .select({ id: supplyLots.id, lotNumber: supplyLots.lotNumber, product: supplyLots.product })
        .from(supplyLots)
        .where(eq(supplyLots.studyId, study.id))
    ).map((l) => [l.id, l]),
  );
  const dispensings = await ctx.db
    .select({
      d: supplyDispensings,
      participantId: participants.id,
      subject: participants.subjectCode,
      site: sites.code,
      name: users.fullName,
      seq: ledgerEntries.seq,
      leafHash: ledgerEntries.leafHash,
      r: supplyReturns,
    })
    .from(supplyDispensings)
    .innerJoin(participants, eq(participants.id, supplyDispensings.participantId))
    .innerJoin(sites, eq(sites.id, supplyDispensings.siteId))
    .leftJoin(users, eq(users.id, supplyDispensings.actorUserId))
    .leftJoin(ledgerEntries, eq(ledgerEntries.id, supplyDispensings.entryId))
    .leftJoin(supplyReturns, eq(supplyReturns.dispensingId, supplyDispensings.id))
    .where(
      and(
        eq(supplyDispensings.studyId, study.id),
        siteIds.length ? inArray(supplyDispensings.siteId, siteIds) : undefined,
      ),
    )
    .orderBy(supplyDispensings.createdAt, supplyDispensings.id);

  const sealed = await loadEntries(ctx, [
    ...dispensings.map((x) => x.d.entryId),
    ...dispensings.flatMap((x) => (x.r ? [x.r.entryId] : [])),
  ]);
  const entries: { fullUrl: string; resource: Resource }[] = [];
  const urn = (type: string, key: string) => `urn:uuid:${uuidV5(`${study.id}/${type}/${key}`)}`;
  const add = (key: string, resource: Resource) => {
    const fullUrl = urn(resource.resourceType, key);
    entries.push({ fullUrl, resource });
    return fullUrl;
  };
  const medicationUrl = new Map<string, string>();
  for (const k of kits) {
    const lot = lots.get(k.lotId);
    const showLot = k.shipment ? (siteById.get(k.shipment.siteId)?.showLots ?? false) : scope.depotShowLots;
    const location = kitLocation(k);
    medicationUrl.set(
      k.id,
      add(k.id, {
        resourceType: "Medication",
        id: safeId(`kit-${k.number}`),
        identifier: [{ system: `urn:trialseal:kit:${study.code}`, value: k.number }],
        code: { text: lot?.product ?? "investigational product" },
        status: location === "destroyed" || k.lotRecalled ? "inactive" : "active",
        ...(showLot && lot ? { batch: { lotNumber: lot.lotNumber, expirationDate: k.expiresOn } } : {}),
        extension: [{ url: `${EXT}/kit-units`, valueInteger: k.units }],
      }),
    );
  }
  const patientUrl = new Map<string, string>();
  for (const x of dispensings) {
    if (patientUrl.has(x.participantId)) continue;
    patientUrl.set(
      x.participantId,
      add(x.participantId, {
        resourceType: "Patient",
        id: safeId(`${study.code}-${x.subject}`),
        identifier: [{ system: `urn:trialseal:subject:${study.code}`, value: x.subject }],
      }),
    );
  }
  const kitNumber = new Map(kits.map((k) => [k.id, k]));
  for (const x of dispensings) {
    const d = x.d;
    const kit = kitNumber.get(d.kitId);
    const medication = medicationUrl.get(d.kitId);
    if (!kit || !medication) continue; // a kit not in scope cannot be: dispensed at a site in scope, shipped there
    const performer = d.actorTokenId
      ? tokenLabel({ id: d.actorTokenId, name: d.actorTokenName ?? "" })
      : (x.name ?? "unknown user");
    const r = x.r;
    const joined = { number: kit.number, subject: x.subject, site: x.site };
    const differs = [
      ...dispensingDiff(sealed.get(d.entryId), d, joined),
      ...(r ? returnDiff(sealed.get(r.entryId), r, joined).map((f) => `return: ${f}`) : []),
    ];
    add(d.id, {
      resourceType: "MedicationDispense",
      id: safeId(`dispense-${d.id}`),
      ...(differs.length
        ? {
            meta: {
              tag: [
                {
                  system: `${EXT}/seal`,
                  code: "ledger-mismatch",
                  display: "does not match its sealed ledger entry",
                },
              ],
            },
          }
        : {}),
      identifier: [{ system: "urn:trialseal:supply-dispensing", value: d.id }],
      status: "completed",
      medicationReference: { reference: medication, display: `kit ${kit.number}` },
      subject: { reference: patientUrl.get(x.participantId), display: x.subject },
      performer: [{ actor: { display: performer } }],
      location: { display: `site ${x.site}` },
      quantity: { value: kit.units, unit: "units" },
      whenHandedOver: d.createdAt.toISOString(),
      extension: [
        ...(d.visit ? [{ url: `${EXT}/visit`, valueString: d.visit }] : []),
        ...(r
          ? [
              {
                url: `${EXT}/kit-return`,
                extension: [
                  { url: "unitsReturned", valueInteger: r.unitsReturned },
                  { url: "returnedOn", valueDate: r.returnedOn },
                  ...(r.compliancePercent === null
                    ? []
                    : [{ url: "compliancePercent", valueInteger: r.compliancePercent }]),
                ],
              },
            ]
          : []),
        differs.length
          ? {
              url: `${EXT}/ledger-mismatch`,
              extension: [
                { url: "entry", valueString: d.entryId },
                ...differs.map((f) => ({ url: "differs", valueString: f })),
              ],
            }
          : {
              url: `${EXT}/ledger-entry`,
              extension: [
                { url: "entry", valueString: d.entryId },
                ...(x.seq === null ? [] : [{ url: "seq", valueInteger: x.seq }]),
                ...(x.leafHash === null ? [] : [{ url: "leafHash", valueString: toHex(x.leafHash) }]),
              ],
            },
      ],
    });
  }
  return {
    resourceType: "Bundle",
    id: safeId(`${study.code}-supply-${now.getTime()}`),
    meta: primaryUseFhirMeta(), // the choices it honours (ADR 0071)
    type: "collection",
    timestamp: now.toISOString(),
    entry: entries.map((e) => ({ fullUrl: e.fullUrl, resource: JSON.parse(JSON.stringify(e.resource)) })),
  };
}

/** The bundle as a JSON file (an audited export). */
export async function supplyFhirExport(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
): Promise<{ name: string; text: string }> {
  const bundle = await supplyFhirBundle(ctx, principal, studyCode);
  const study = await supplyExportScope(ctx, principal, studyCode).then((s) => s.study);
  const text = `${JSON.stringify(bundle, null, 2)}\n`;
  await audit(ctx.db, {
    action: "export.supply_fhir",
    ...auditActor(principal),
    studyId: study.id,
    detail: {
      resources: (bundle.entry as unknown[]).length,
      bytes: text.length,
      // The participants of the bundle's Patients (identifier = subject code).
      ...exportParticipantsDetail(
        await participantIdsOfSubjects(
          ctx,
          study.id,
          (bundle.entry as { resource: { resourceType: string; identifier?: { value?: string }[] } }[])
            .filter((x) => x.resource.resourceType === "Patient")
            .map((x) => x.resource.identifier?.[0]?.value),
        ),
      ),
    },
  });
  return { name: `${study.code}-supply-fhir.json`, text };
}
