/**
 * The public page's drop zone (ADR 0050): the visitor drops or picks a PDF, the browser computes its SHA-256
 * (crypto.subtle) and looks it up in the sealed hashes already on the page. Nothing is sent anywhere: no request
 * carries the file or its hash.
 */
import { type DragEvent, useEffect, useState } from "react";

export interface CheckableDocument {
  typeWords: string;
  version: string;
  sha256: string;
  matchesSeal: boolean;
  seal: {
    status: string;
    recordedAt: string | null;
    sealedAt: string | null;
    batch: number | null;
    anchors: { ledger: string; words?: string; treeSize: number; at: string | null }[];
  };
}

export const utc = (iso: string | null) => (iso ? `${iso.slice(0, 16).replace("T", " ")} UTC` : "");

/** The verdict, in words, for a file of SHA-256 `hex` (lowercase) against the study's registered documents. */
export function checkVerdict(
  hex: string,
  documents: readonly CheckableDocument[],
): { registered: boolean; words: string } {
  const d = documents.find((x) => x.matchesSeal && x.sha256 === hex);
  if (!d) return { registered: false, words: "This file is not a registered version of any document of this study." };
  const committed =
    d.seal.status === "sealed"
      ? `committed on ${utc(d.seal.sealedAt)} (sealed in batch ${d.seal.batch} of the log)`
      : `recorded on ${utc(d.seal.recordedAt)}, not yet sealed into the log`;
  const anchored = d.seal.anchors.length
    ? `anchored in ${d.seal.anchors.map((a) => `${a.words ?? a.ledger}${a.at ? ` on ${utc(a.at)}` : ""}`).join("; ")}`
    : "not yet anchored in a ledger outside the portal";
  return {
    registered: true,
    words:
      `This is a registered version: version ${d.version} of the ${d.typeWords.toLowerCase()}, ` +
      `${committed}, ${anchored}.`,
  };
}

async function sha256Hex(file: Blob): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export function PdfCheck({ documents }: { documents: readonly CheckableDocument[] }) {
  const [ready, setReady] = useState(false);
  const [over, setOver] = useState(false);
  const [result, setResult] = useState<{ registered: boolean; words: string; name: string; hex: string } | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => setReady(true), []);

  async function check(file: File | undefined) {
    setResult(null);
    setProblem(null);
    if (!file) return;
    if (!globalThis.crypto?.subtle) {
      setProblem("This browser computes file hashes only on a secure (https) page.");
      return;
    }
    try {
      const hex = await sha256Hex(file);
      setResult({ ...checkVerdict(hex, documents), name: file.name, hex });
    } catch {
      setProblem("The file could not be read.");
    }
  }
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    void check(e.dataTransfer.files[0]);
  };
  return (
    // biome-ignore lint/a11y/noStaticElementInteractions: dropping is a mouse shortcut; the file input is the control
    <div
      className={`drop-zone${over ? " over" : ""}`}
      data-pdf-check={ready ? "ready" : "loading"}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={onDrop}
    >
      <p>
        <strong>Drop a PDF here</strong> or pick one, to learn whether it is a registered version.
      </p>
      <label htmlFor="pdf-check-file">PDF to check</label>
      <input
        id="pdf-check-file"
        type="file"
        accept="application/pdf,.pdf"
        disabled={!ready}
        onChange={(e) => void check(e.currentTarget.files?.[0])}
      />
      <p className="muted">Your browser computes the file's SHA-256; the file is not uploaded.</p>
      <noscript>
        <p>
          Checking a file here needs JavaScript. Without it, compute the SHA-256 yourself (for example{" "}
          <code>sha256sum file.pdf</code>) and compare it with the hashes listed below.
        </p>
      </noscript>
      <div aria-live="polite">
        {result ? (
          <div
            className={`check-result ${result.registered ? "ok" : "bad"}`}
            data-check-result={result.registered ? "registered" : "not-registered"}
          >
            <p>
              <strong>{result.words}</strong>
            </p>
            <p className="muted hash">
              {result.name}: SHA-256 {result.hex}
            </p>
          </div>
        ) : null}
        {problem ? (
          <p className="error" role="alert">
            {problem}
          </p>
        ) : null}
      </div>
    </div>
  );
}
