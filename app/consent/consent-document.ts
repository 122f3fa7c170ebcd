/**
 * Consent documents are Markdown with three small additions (docs/decisions/0007-econsent.md):
 *   `## Heading` starts a section; the participant acknowledges each section with its own checkbox.
 *   `[optional:key] Text` inside a section is an optional consent item (yes / no, recorded per participant);
 *   `[optional:key for:HRESCH,BIORCH] Text` also names the purposes it governs (codes of app/data-sharing/
 *   purposes.ts, ADR 0066): a participant's "yes" in force allows their data to be used for them.
 *   `[question:yes] Text?` or `[question:no] Text?` is a comprehension question with its correct answer.
 * Everything else is text: `# Title`, paragraphs (blank-line separated), `- ` list items and `**bold**`.
 * Pure: runs on the server (validation at approval) and in the browser (the signing page).
 */

import { PURPOSE_CODES, isPurposeCode, type PurposeCode } from "../data-sharing/purposes.ts";

export type Block = { type: "p"; text: string } | { type: "ul"; items: string[] };

export interface OptionalItem {
  key: string;
  text: string;
  /** The purposes the item governs (`for:` codes); empty: it governs none. */
  purposes: PurposeCode[];
}

export interface Question {
  id: string;
  text: string;
  answer: "yes" | "no";
}

export interface ConsentSection {
  id: string;
  heading: string;
  blocks: Block[];
  optional: OptionalItem[];
  questions: Question[];
}

export interface ParsedConsentDocument {
  title: string | null;
  /** Text before the first section. */
  intro: Block[];
  sections: ConsentSection[];
}

export type ConsentParseResult =
  | { ok: true; doc: ParsedConsentDocument }
  | { ok: false; line: number; message: string };

const OPTIONAL = /^\[optional:([^\]\s]*)(?:\s+for:([^\]]*))?\s*\]\s*(.*)$/;
const QUESTION = /^\[question:([^\]]*)\]\s*(.*)$/;
const KEY = /^[a-z][a-z0-9_]{0,31}$/;

export function parseConsentDocument(markdown: string): ConsentParseResult {
  const lines = markdown.replace(/\r\n?/g, "\n").split("\n");
  let title: string | null = null;
  const intro: Block[] = [];
  const sections: ConsentSection[] = [];
  const keys = new Set<string>();
  let para: string[] = [];
  let list: string[] = [];
  let questions = 0;

  const target = () => (sections.length ? sections[sections.length - 1].blocks : intro);
  const flush = () => {
    if (para.length) target().push({ type: "p", text: para.join(" ") });
    if (list.length) target().push({ type: "ul", items: list });
    para = [];
    list = [];
  };

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    const n = i + 1;
    if (line === "") {
      flush();
      continue;
    }
    const h = /^(#{1,6})\s+(.+)$/.exec(line);
    if (h) {
      flush();
      if (h[1].length === 1) {
        if (title !== null || sections.length)
          return { ok: false, line: n, message: "only one `# Title`, before the first section" };
        title = h[2].trim();
      } else if (h[1].length === 2) {
        sections.push({ id: `s${sections.length + 1}`, heading: h[2].trim(), blocks: [], optional: [], questions: [] });
      } else target().push({ type: "p", text: h[2].trim() });
      continue;
    }
    const opt = OPTIONAL.exec(line);
    if (opt) {
      flush();
      if (!sections.length) return { ok: false, line: n, message: "an optional item must be inside a `## section`" };
      if (!KEY.test(opt[1]))
        return {
          ok: false,
          line: n,
          message: `optional item key "${opt[1]}": use 1-32 lower-case letters, digits or _ (starting with a letter)`,
        };
      if (keys.has(opt[1])) return { ok: false, line: n, message: `optional item key "${opt[1]}" is used twice` };
      const purposes: PurposeCode[] = [];
      if (opt[2] !== undefined) {
        const codes = opt[2].split(",").map((c) => c.trim());
        for (const c of codes) {
          if (!isPurposeCode(c))
            return {
              ok: false,
              line: n,
              message:
                `optional item "${opt[1]}": "${c || "(empty)"}" is not a purpose code; ` +
                `use one or more of ${PURPOSE_CODES.join(", ")}, separated by commas`,
            };
          if (!purposes.includes(c)) purposes.push(c);
        }
      }
      if (!opt[3].trim()) return { ok: false, line: n, message: `optional item "${opt[1]}" has no text` };
      keys.add(opt[1]);
      sections[sections.length - 1].optional.push({ key: opt[1], text: opt[3].trim(), purposes });
      continue;
    }
    const q = QUESTION.exec(line);
    if (q) {
      flush();
      if (!sections.length) return { ok: false, line: n, message: "a question must be inside a `## section`" };
      if (q[1] !== "yes" && q[1] !== "no")
        return { ok: false, line: n, message: `a question's answer must be yes or no, not "${q[1]}"` };
      if (!q[2].trim()) return { ok: false, line: n, message: "the question has no text" };
      sections[sections.length - 1].questions.push({ id: `q${++questions}`, text: q[2].trim(), answer: q[1] });
      continue;
    }
    if (/^\[(optional|question)\b/.test(line))
      return {
        ok: false,
        line: n,
        message: "write `[optional:key] text`, `[optional:key for:HRESCH] text` or `[question:yes|no] text`",
      };
    const li = /^[-*]\s+(.*)$/.exec(line);
    if (li) {
      if (para.length) flush();
      list.push(li[1]);
      continue;
    }
    if (list.length) flush();
    para.push(line);
  }
  flush();
  if (sections.length === 0)
    return {
      ok: false,
      line: 1,
      message: "the document needs at least one `## section` for the participant to acknowledge",
    };
  if (sections.length > 60) return { ok: false, line: 1, message: "at most 60 sections" };
  if (keys.size > 20) return { ok: false, line: 1, message: "at most 20 optional items" };
  if (questions > 20) return { ok: false, line: 1, message: "at most 20 questions" };
  return { ok: true, doc: { title, intro, sections } };
}

/** Every optional item of a document, in order. */
export function optionalItems(doc: ParsedConsentDocument): OptionalItem[] {
  return doc.sections.flatMap((s) => s.optional);
}

/** Every comprehension question of a document, in order. */
export function questionsOf(doc: ParsedConsentDocument): Question[] {
  return doc.sections.flatMap((s) => s.questions);
}

/** Split `**bold**` spans for rendering: [text, bold, text, ...]. */
export function inlineSpans(text: string): { bold: boolean; text: string }[] {
  return text
    .split(/\*\*(.+?)\*\*/)
    .map((t, i) => ({ bold: i % 2 === 1, text: t }))
    .filter((s) => s.text !== "");
}

/** Names compared for the typed signature: case, accents' composition and runs of white space do not matter. */
export function sameName(a: string, b: string): boolean {
  const norm = (s: string) => s.normalize("NFC").trim().replace(/\s+/g, " ").toLocaleLowerCase();
  return norm(a) === norm(b) && norm(a).length > 0;
}
