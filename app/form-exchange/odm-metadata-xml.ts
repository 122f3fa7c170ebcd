/**
 * The small XML writer the ODM files are made with (the study export, app/exports/odm.server.ts, and the forms'
 * MetaDataVersion, odm-metadata.ts): escaping that a conforming parser reads back exactly, and elements with
 * attributes (undefined ones left out) and children or text.
 */
import { XML_UNSAFE } from "../../anchoring/forms/definition.ts";

/**
 * Characters XML 1.0 cannot carry at all, not even as a character reference. Record input refuses them
 * (anchoring/forms/definition.ts); data stored before that has them replaced by U+FFFD, visibly, so that the file stays
 * well-formed (the evidence-package check then reports such an item as not matching its sealed value, as it is).
 */
const NOT_XML = new RegExp(XML_UNSAFE.source, "g");
/** The special characters, and CR, which a parser would otherwise turn into LF (end-of-line handling). */
export const esc = (s: string) =>
  s
    .replace(NOT_XML, "\ufffd")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/\r/g, "&#13;");
/**
 * An attribute value: also TAB and LF as references, which attribute-value normalisation leaves alone (a raw TAB,
 * LF or CR in an attribute is read back as a space), so that a parser gives back the exact value.
 */
export const escAttr = (s: string) => esc(s).replace(/\n/g, "&#10;").replace(/\t/g, "&#9;");

export type Node = string | null | undefined | false | Node[];
export type Attrs = Record<string, string | number | undefined | null>;

export function el(name: string, attrs: Attrs, ...children: Node[]): string {
  const a = Object.entries(attrs)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => ` ${k}="${escAttr(String(v))}"`)
    .join("");
  const body = children.flat(Infinity as 1).filter((c): c is string => typeof c === "string" && c.length > 0);
  return body.length ? `<${name}${a}>${body.join("")}</${name}>` : `<${name}${a}/>`;
}
export const text = (name: string, t: string) => `<${name}>${esc(t)}</${name}>`;
export const translated = (name: string, t: string, lang = "en") =>
  `<${name}><TranslatedText xml:lang="${escAttr(lang)}">${esc(t)}</TranslatedText></${name}>`;
