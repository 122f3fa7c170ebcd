/**
 * Drug accountability as CDISC ODM 1.3.2, where CDISC defines it (issue 21, ADR 0062): the SDTM DA (Drug
 * Accountability) domain, as ClinicalData with its MetaDataVersion. One ItemGroupData (IG.DA, Domain DA) per kit
 * dispensed and per kit returned, under the participant's SubjectData: DASEQ, DAREFID (the kit number), DATESTCD
 * (DISPAMT / RETAMT, CDISC controlled terminology), DATEST (Dispensed Amount / Returned Amount), DAORRES and DASTRESN
 * (the units), DAORRESU / DASTRESU, VISIT (when the dispensing named one) and DADTC (the date on the site's clock;
 * a return's date as recorded). Each ItemGroupData carries an AuditRecord (who, where, when) whose SourceID is the
 * ledger entry proving it, as the study's ODM export does (app/exports/odm.server.ts `sourceId`). A row that differs
 * from its entry (accountability.server.ts dispensingDiff, returnDiff) has no proof reference: its SourceID says
 * `trialseal:mismatch;entry=ID;differs=FIELDS` and an Annotation's Comment says so in words.
 *
 * What CDISC does not define there (lots, shipments, receipts, destruction, recall, reconciliation) is left to the
 * accountability log and the FHIR export. SDTM DA has no lot, so this file never names one (nor a kit type): it is
 * the same for blinded and unblinded roles. Site-scoped roles get their sites' participants. An audited export.
 */
import { PRIMARY_USE_CHOICES } from "../data-sharing/choices-statement.ts";
import { and, eq, inArray } from "drizzle-orm";
import { toHex } from "../../anchoring/log/bytes.ts";
import {
  ledgerEntries,
  participants,
  sites,
  supplyDispensings,
  supplyKits,
  supplyReturns,
  users,
} from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { exportParticipantsDetail, participantIdsOfSubjects } from "../data-sharing/export-access.server.ts";
import { sourceId } from "../exports/odm.server.ts";
import { el, text, translated } from "../form-exchange/odm-metadata-xml.ts";
import { odmRootAttributes } from "../form-exchange/odm-metadata.ts";
import { auditActor } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { dateInZone } from "../study-documents/protocol-in-force.ts";
import { dispensingDiff, loadEntries, returnDiff, supplyExportScope } from "./accountability.server.ts";

export const DA_OID = {
  mdv: (code: string) => `MDV.${code}.DA`,
  event: "SE.DA",
  form: "F.DA",
  group: "IG.DA",
  item: (name: string) => `IT.DA.${name}`,
  testCodes: "CL.DA.DATESTCD",
  study: (code: string) => `ST.${code}`,
  user: (id: string) => `U.${id}`,
  location: (site: string) => `L.${site}`,
};

/** The DA variables this file carries, in SDTM order, with their ODM data types and labels. */
const DA_ITEMS: { name: string; type: "integer" | "text" | "date"; label: string; length?: number }[] = [
  { name: "DASEQ", type: "integer", label: "Sequence Number" },
  { name: "DAREFID", type: "text", label: "Reference ID (kit number)", length: 20 },
  { name: "DATESTCD", type: "text", label: "Short Name of Accountability Assessment", length: 8 },
  { name: "DATEST", type: "text", label: "Name of Accountability Assessment", length: 40 },
  { name: "DAORRES", type: "text", label: "Result or Finding in Original Units", length: 10 },
  { name: "DAORRESU", type: "text", label: "Original Units", length: 10 },
  { name: "DASTRESN", type: "integer", label: "Numeric Result/Finding in Standard Units" },
  { name: "DASTRESU", type: "text", label: "Standard Units", length: 10 },
  { name: "VISIT", type: "text", label: "Visit Name", length: 40 },
  { name: "DADTC", type: "date", label: "Date/Time of Accountability Assessment" },
];
export const DA_TESTS = { DISPAMT: "Dispensed Amount", RETAMT: "Returned Amount" } as const;
/** The unit of kit contents (lots record a count of units per kit, not a dosage form). */
export const DA_UNIT = "UNIT";

interface DaRecord {
  subject: string;
  site: string;
  test: keyof typeof DA_TESTS;
  kit: string;
  units: number;
  visit: string | null;
  date: string;
  at: Date;
  actor: { userId: string | null; tokenId: string | null; tokenName: string | null };
  entry: { id: string; seq: number | null; leafHash: string | null };
  /** The row's fields that differ from its entry (empty: it matches). */
  differs: string[];
}

function metaDataVersion(code: string): string {
  return el(
    "MetaDataVersion",
    { OID: DA_OID.mdv(code), Name: `${code} drug accountability (SDTM DA)` },
    el("Protocol", {}, el("StudyEventRef", { StudyEventOID: DA_OID.event, OrderNumber: 1, Mandatory: "No" })),
    el(
      "StudyEventDef",
      { OID: DA_OID.event, Name: "Drug accountability", Repeating: "No", Type: "Common" },
      el("FormRef", { FormOID: DA_OID.form, Mandatory: "No" }),
    ),
    el(
      "FormDef",
      { OID: DA_OID.form, Name: "Drug accountability", Repeating: "No" },
      el("ItemGroupRef", { ItemGroupOID: DA_OID.group, Mandatory: "No" }),
    ),
    el(
      "ItemGroupDef",
      {
        OID: DA_OID.group,
        Name: "DA",
        Repeating: "Yes",
        SASDatasetName: "DA",
        Domain: "DA",
        Purpose: "Tabulation",
      },
      translated("Description", "Drug Accountability: units of investigational product dispensed and returned"),
      DA_ITEMS.map((it, i) =>
        el("ItemRef", {
          ItemOID: DA_OID.item(it.name),
          OrderNumber: i + 1,
          Mandatory: it.name === "VISIT" ? "No" : "Yes",
          KeySequence: it.name === "DASEQ" ? 1 : undefined,
        }),
      ),
    ),
    DA_ITEMS.map((it) =>
      el(
        "ItemDef",
        {
          OID: DA_OID.item(it.name),
          Name: it.name,
          DataType: it.type,
          Length: it.length,
          SASFieldName: it.name,
          SDSVarName: it.name,
        },
        translated("Description", it.label),
        it.name === "DATESTCD" ? el("CodeListRef", { CodeListOID: DA_OID.testCodes }) : null,
      ),
    ),
    el(
      "CodeList",
      { OID: DA_OID.testCodes, Name: "Drug accountability test code (DATESTCD)", DataType: "text" },
      Object.entries(DA_TESTS).map(([c, d]) => el("CodeListItem", { CodedValue: c }, translated("Decode", d))),
    ),
  );
}

/** The ODM file (permission supply.export; site-scoped roles get their sites). */
export async function supplyOdm(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  now = new Date(),
): Promise<string> {
  return (await supplyOdmFile(ctx, principal, studyCode, now)).xml;
}

/** The ODM file and the subjects it holds (a SubjectData each). */
async function supplyOdmFile(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  now = new Date(),
): Promise<{ xml: string; subjects: string[] }> {
  const scope = await supplyExportScope(ctx, principal, studyCode);
  const study = scope.study;
  const siteIds = scope.sites.map((s) => s.id);
  const zone = new Map(scope.sites.map((s) => [s.code, s.timeZone]));
  const base = {
    subject: participants.subjectCode,
    site: sites.code,
    kit: supplyKits.number,
    seq: ledgerEntries.seq,
    leafHash: ledgerEntries.leafHash,
  };
  const dispensed = await ctx.db
    .select({ d: supplyDispensings, units: supplyKits.units, ...base })
    .from(supplyDispensings)
    .innerJoin(participants, eq(participants.id, supplyDispensings.participantId))
    .innerJoin(sites, eq(sites.id, supplyDispensings.siteId))
    .innerJoin(supplyKits, eq(supplyKits.id, supplyDispensings.kitId))
    .leftJoin(ledgerEntries, eq(ledgerEntries.id, supplyDispensings.entryId))
    .where(and(eq(supplyDispensings.studyId, study.id), inArray(supplyDispensings.siteId, siteIds)));
  const returned = await ctx.db
    .select({ r: supplyReturns, ...base })
    .from(supplyReturns)
    .innerJoin(supplyDispensings, eq(supplyDispensings.id, supplyReturns.dispensingId))
    .innerJoin(participants, eq(participants.id, supplyDispensings.participantId))
    .innerJoin(sites, eq(sites.id, supplyDispensings.siteId))
    .innerJoin(supplyKits, eq(supplyKits.id, supplyReturns.kitId))
    .leftJoin(ledgerEntries, eq(ledgerEntries.id, supplyReturns.entryId))
    .where(and(eq(supplyReturns.studyId, study.id), inArray(supplyDispensings.siteId, siteIds)));
  const sealed = await loadEntries(ctx, [...dispensed.map((x) => x.d.entryId), ...returned.map((x) => x.r.entryId)]);
  const records: DaRecord[] = [
    ...dispensed.map(
      (x): DaRecord => ({
        subject: x.subject,
        site: x.site,
        test: "DISPAMT",
        kit: x.kit,
        units: x.units,
        visit: x.d.visit,
        date: dateInZone(x.d.createdAt, zone.get(x.site) ?? "UTC"),
        at: x.d.createdAt,
        actor: { userId: x.d.actorUserId, tokenId: x.d.actorTokenId, tokenName: x.d.actorTokenName },
        entry: { id: x.d.entryId, seq: x.seq, leafHash: x.leafHash ? toHex(x.leafHash) : null },
        differs: dispensingDiff(sealed.get(x.d.entryId), x.d, { number: x.kit, subject: x.subject, site: x.site }),
      }),
    ),
    ...returned.map(
      (x): DaRecord => ({
        subject: x.subject,
        site: x.site,
        test: "RETAMT",
        kit: x.kit,
        units: x.r.unitsReturned,
        visit: null,
        date: x.r.returnedOn,
        at: x.r.createdAt,
        actor: { userId: x.r.actorUserId, tokenId: x.r.actorTokenId, tokenName: x.r.actorTokenName },
        entry: { id: x.r.entryId, seq: x.seq, leafHash: x.leafHash ? toHex(x.leafHash) : null },
        differs: returnDiff(sealed.get(x.r.entryId), x.r, { number: x.kit, subject: x.subject }),
      }),
    ),
  ].sort((a, b) => a.subject.localeCompare(b.subject) || a.at.getTime() - b.at.getTime() || a.kit.localeCompare(b.kit));
  const userIds = [...new Set(records.map((r) => r.actor.userId).filter((x): x is string => x !== null))];
  const names = userIds.length
    ? await ctx.db.select({ id: users.id, name: users.fullName }).from(users).where(inArray(users.id, userIds))
    : [];
  const tokens = new Map(
    records.flatMap((r): [string, string][] => (r.actor.tokenId ? [[r.actor.tokenId, r.actor.tokenName ?? ""]] : [])),
  );
  const userOid = (a: DaRecord["actor"]) => DA_OID.user(a.tokenId ? `token.${a.tokenId}` : (a.userId ?? "unknown"));
  const admin = el(
    "AdminData",
    { StudyOID: DA_OID.study(study.code) },
    names.map((u) => el("User", { OID: DA_OID.user(u.id), UserType: "Other" }, text("FullName", u.name))),
    [...tokens].map(([id, name]) =>
      el("User", { OID: DA_OID.user(`token.${id}`), UserType: "Other" }, text("FullName", `API token ${name}`)),
    ),
    records.some((r) => !r.actor.userId && !r.actor.tokenId)
      ? el("User", { OID: DA_OID.user("unknown"), UserType: "Other" }, text("FullName", "unknown"))
      : null,
    scope.sites.map((s) =>
      el(
        "Location",
        { OID: DA_OID.location(s.code), Name: s.name, LocationType: "Site" },
        el("MetaDataVersionRef", {
          StudyOID: DA_OID.study(study.code),
          MetaDataVersionOID: DA_OID.mdv(study.code),
          EffectiveDate: study.createdAt.toISOString().slice(0, 10),
        }),
      ),
    ),
  );
  const subjects = [...new Set(records.map((r) => r.subject))];
  const clinical = el(
    "ClinicalData",
    { StudyOID: DA_OID.study(study.code), MetaDataVersionOID: DA_OID.mdv(study.code) },
    subjects.map((subject) => {
      const mine = records.filter((r) => r.subject === subject);
      return el(
        "SubjectData",
        { SubjectKey: subject, TransactionType: "Insert" },
        el("SiteRef", { LocationOID: DA_OID.location(mine[0].site) }),
        el(
          "StudyEventData",
          { StudyEventOID: DA_OID.event, TransactionType: "Insert" },
          el(
            "FormData",
            { FormOID: DA_OID.form, TransactionType: "Insert" },
            mine.map((r, i) => {
              const values: [string, string | number | null][] = [
                ["DASEQ", i + 1],
                ["DAREFID", r.kit],
                ["DATESTCD", r.test],
                ["DATEST", DA_TESTS[r.test]],
                ["DAORRES", String(r.units)],
                ["DAORRESU", DA_UNIT],
                ["DASTRESN", r.units],
                ["DASTRESU", DA_UNIT],
                ["VISIT", r.visit],
                ["DADTC", r.date],
              ];
              return el(
                "ItemGroupData",
                { ItemGroupOID: DA_OID.group, ItemGroupRepeatKey: i + 1, TransactionType: "Insert" },
                el(
                  "AuditRecord",
                  { ID: `AR.DA.${r.entry.id}` },
                  el("UserRef", { UserOID: userOid(r.actor) }),
                  el("LocationRef", { LocationOID: DA_OID.location(r.site) }),
                  text("DateTimeStamp", r.at.toISOString()),
                  text(
                    "SourceID",
                    r.differs.length
                      ? `trialseal:mismatch;entry=${r.entry.id};differs=${r.differs.join(",")}`
                      : sourceId({ seq: r.entry.seq, leafHash: r.entry.leafHash, entryId: r.entry.id }),
                  ),
                ),
                r.differs.length
                  ? el(
                      "Annotation",
                      { SeqNum: 1 },
                      text("Comment", `does not match its sealed ledger entry: ${r.differs.join(", ")}`),
                    )
                  : null,
                values
                  .filter(([, v]) => v !== null)
                  .map(([n, v]) => el("ItemData", { ItemOID: DA_OID.item(n), Value: v })),
              );
            }),
          ),
        ),
      );
    }),
  );
  const study_ = el(
    "Study",
    { OID: DA_OID.study(study.code) },
    el(
      "GlobalVariables",
      {},
      text("StudyName", study.code),
      text("StudyDescription", study.title),
      text("ProtocolName", study.code),
    ),
    metaDataVersion(study.code),
  );
  const xml = `<?xml version="1.0" encoding="UTF-8"?>\n${el(
    "ODM",
    { ...odmRootAttributes(`TS.${study.code}.DA`, "Transactional", now), Description: PRIMARY_USE_CHOICES },
    study_,
    admin,
    clinical,
  )}\n`;
  return { xml, subjects };
}

/** The ODM file for download (an audited export). */
export async function supplyOdmExport(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
): Promise<{ name: string; text: string }> {
  const { xml, subjects } = await supplyOdmFile(ctx, principal, studyCode);
  const { study } = await supplyExportScope(ctx, principal, studyCode);
  await audit(ctx.db, {
    action: "export.supply_odm",
    ...auditActor(principal),
    studyId: study.id,
    detail: {
      bytes: xml.length,
      ...exportParticipantsDetail(await participantIdsOfSubjects(ctx, study.id, subjects)),
    },
  });
  return { name: `${study.code}-drug-accountability-odm.xml`, text: xml };
}
