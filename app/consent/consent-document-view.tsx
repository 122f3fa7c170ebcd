/** A consent document (app/consent/consent-document.ts) as the participant sees it; with `signing`, the inputs too. */
import { inlineSpans, type Block, type ParsedConsentDocument } from "./consent-document.ts";

function Inline({ text }: { text: string }) {
  return (
    <>
      {inlineSpans(text).map((s, i) =>
        // biome-ignore lint/suspicious/noArrayIndexKey: spans have no id; the list is rendered once, never reordered
        s.bold ? <strong key={i}>{s.text}</strong> : <span key={i}>{s.text}</span>,
      )}
    </>
  );
}

function Blocks({ blocks }: { blocks: Block[] }) {
  return (
    <>
      {blocks.map((b, i) =>
        b.type === "p" ? (
          // biome-ignore lint/suspicious/noArrayIndexKey: blocks have no id; the list is rendered once, never reordered
          <p key={i}>
            <Inline text={b.text} />
          </p>
        ) : (
          // biome-ignore lint/suspicious/noArrayIndexKey: blocks have no id; the list is rendered once, never reordered
          <ul key={i}>
            {b.items.map((it, j) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: items may repeat; static list, never reordered
              <li key={j}>
                <Inline text={it} />
              </li>
            ))}
          </ul>
        ),
      )}
    </>
  );
}

export function ConsentDocumentView({
  doc,
  signing,
  error,
  problems,
}: {
  doc: ParsedConsentDocument;
  signing?: boolean;
  error?: { field: string | null; message: string } | null;
  /** Every problem of a refused signing: each shown at its question, item or acknowledgement. */
  problems?: { field: string; message: string }[] | null;
}) {
  const messageOf = (f: string) =>
    problems?.find((p) => p.field === f)?.message ?? (error?.field === f ? error.message : undefined);
  const bad = (f: string) => (messageOf(f) ? true : undefined);
  const fieldError = (f: string) =>
    messageOf(f) ? (
      <p className="field-error" id={`${f}-error`}>
        {messageOf(f)}
      </p>
    ) : null;
  const describedBy = (f: string) => (messageOf(f) ? `${f}-error` : undefined);
  return (
    <article className="consent-doc">
      {doc.title ? <h2>{doc.title}</h2> : null}
      <Blocks blocks={doc.intro} />
      {doc.sections.map((s) => (
        <section key={s.id} className="consent-section" data-section={s.id}>
          <h3>{s.heading}</h3>
          <Blocks blocks={s.blocks} />
          {s.questions.map((q) => (
            <fieldset key={q.id} className="question" aria-invalid={bad(`answer-${q.id}`)}>
              <legend>{q.text}</legend>
              {signing ? fieldError(`answer-${q.id}`) : null}
              {signing ? (
                <>
                  <label className="inline">
                    <input
                      type="radio"
                      id={`answer-${q.id}`}
                      name={`answer-${q.id}`}
                      value="yes"
                      aria-describedby={describedBy(`answer-${q.id}`)}
                    />{" "}
                    Yes
                  </label>
                  <label className="inline">
                    <input type="radio" name={`answer-${q.id}`} value="no" /> No
                  </label>
                </>
              ) : (
                <p className="muted">Comprehension question (correct answer: {q.answer})</p>
              )}
            </fieldset>
          ))}
          {s.optional.map((o) => (
            <fieldset key={o.key} className="optional" aria-invalid={bad(`option-${o.key}`)}>
              <legend>
                Optional: <Inline text={o.text} />
              </legend>
              {signing ? fieldError(`option-${o.key}`) : null}
              {signing ? (
                <>
                  <label className="inline">
                    <input
                      type="radio"
                      id={`option-${o.key}`}
                      name={`option-${o.key}`}
                      value="yes"
                      aria-describedby={describedBy(`option-${o.key}`)}
                    />{" "}
                    Yes, I agree
                  </label>
                  <label className="inline">
                    <input type="radio" name={`option-${o.key}`} value="no" /> No
                  </label>
                </>
              ) : (
                <p className="muted">Optional item "{o.key}": yes or no, recorded per participant</p>
              )}
            </fieldset>
          ))}
          {signing ? fieldError(`ack-${s.id}`) : null}
          {signing ? (
            <label className="ack" aria-invalid={bad(`ack-${s.id}`)}>
              <input
                type="checkbox"
                id={`ack-${s.id}`}
                name="ack"
                value={s.id}
                aria-describedby={describedBy(`ack-${s.id}`)}
              />{" "}
              I have read and understood "{s.heading}"
            </label>
          ) : null}
        </section>
      ))}
    </article>
  );
}
