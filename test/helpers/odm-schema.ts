/**
 * Validation of a TrialSeal ODM file (ADR 0027) with libxml2 (xmllint-wasm): against ODM 1.3.2 with TrialSeal's
 * vendor extension (app/form-exchange/odm-extension, which redefines CDISC's unchanged foundation schema), and, with
 * every ts: attribute removed, against CDISC's own ODM1-3-2.xsd (test/schemas/odm-1.3.2), as ODM asks of an extension.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const CDISC = path.join(ROOT, "test", "schemas", "odm-1.3.2");
const EXTENSION = path.join(ROOT, "app", "form-exchange", "odm-extension");
const file = (dir: string, name: string) => ({ fileName: name, contents: readFileSync(path.join(dir, name), "utf8") });

/** The file without TrialSeal's extension: its ts: attributes and the declaration of the namespace. */
export const withoutExtension = (xml: string) => xml.replace(/ (?:xmlns:)?ts(?::[A-Za-z]+)?="[^"]*"/g, "");

/** libxml2's messages, [] when the file is valid: `extension` with ts: attributes, `plain` without them. */
export async function validateOdm(xml: string): Promise<{ extension: string[]; plain: string[] }> {
  const { validateXML } = await import("xmllint-wasm");
  const preload = [
    file(CDISC, "ODM1-3-2-foundation.xsd"),
    file(CDISC, "xml.xsd"),
    file(CDISC, "xmldsig-core-schema.xsd"),
    file(CDISC, "xlink.xsd"),
    file(EXTENSION, "trialseal-ns-1.xsd"),
  ];
  const ext = await validateXML({
    xml: [{ fileName: "odm.xml", contents: xml }],
    schema: [file(EXTENSION, "trialseal-odm-1.3.2.xsd")],
    preload,
  });
  const plain = await validateXML({
    xml: [{ fileName: "odm.xml", contents: withoutExtension(xml) }],
    schema: [file(CDISC, "ODM1-3-2.xsd")],
    preload,
  });
  return { extension: ext.errors.map((e) => e.message), plain: plain.errors.map((e) => e.message) };
}
