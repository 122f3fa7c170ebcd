/**
 * The public counterfeit check (issue 21, ADR 0060): the QR code on a kit's label opens `/kits/<label token>`. No
 * sign-in. For people (on a phone, most often): a big verdict, "Genuine kit 123456" or "This label is not one of ours",
 * and whether the kit is recalled, on hold (held, not for use: after a temperature excursion, rejected by the sponsor,
 * or returned; the page never says which) or expired, each with what to do. With `Accept: application/json`:
 * `{genuine, kit, recalled, quarantined, expired}`. An unknown or malformed token, and a destroyed kit's (it no longer
 * exists), is a 404 in both forms (`{"genuine":false}`). Nothing else: no lot, site, date or participant. Never cached.
 *
 * A resource route (no component) that writes the page itself: Remix gives a page route's loader no way to answer
 * one URL with JSON or HTML by the Accept header. The page is static (no script) and uses the portal's stylesheet.
 */
import type { LoaderFunctionArgs } from "@remix-run/node";
import { renderToStaticMarkup } from "react-dom/server";
import { checkKitLabel } from "../../drug-supply/counterfeit-check.server.ts";
import type { PublicKitCheck } from "../../drug-supply/kit-state.ts";
import styles from "../../styles.css";

const HEADERS = {
  "cache-control": "no-store",
  vary: "Accept",
  // The token is in the address: never sent on to another site, never indexed.
  "referrer-policy": "no-referrer",
  "x-robots-tag": "noindex",
};

function Warning({ title, children }: { title: string; children: React.ReactNode }) {
  return (
    <section className="card" aria-label={title}>
      <h2 className="error">{title}</h2>
      <p>{children}</p>
    </section>
  );
}

/** The page for `check` (null: not one of ours). */
export function KitCheckPage({ check }: { check: PublicKitCheck | null }) {
  const flagged = check ? check.recalled || check.quarantined || check.expired : true;
  return (
    <html lang="en">
      <head>
        <meta charSet="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{check ? `Genuine kit ${check.kit} · TrialSeal` : "Not one of our labels · TrialSeal"}</title>
        <link rel="stylesheet" href={styles} />
        <link rel="icon" href="data:," />
      </head>
      <body>
        <main className="page narrow" data-kit-check={check ? (flagged ? "genuine-flagged" : "genuine") : "unknown"}>
          <p className="muted">TrialSeal · check of a clinical trial kit</p>
          {check ? (
            <>
              <h1 data-verdict="genuine">Genuine kit {check.kit}</h1>
              <p>
                This label is one of ours. Check that the kit number printed on the label is{" "}
                <strong>{check.kit}</strong>: if it is not, the label was copied; do not use the product and contact
                your study site.
              </p>
              {check.recalled ? (
                <Warning title="Recalled: do not use this kit">
                  The manufacturer or sponsor has recalled this kit. Do not take or give the product. Bring the kit back
                  to your study site (its pharmacy) and tell them it is recalled.
                </Warning>
              ) : null}
              {check.quarantined ? (
                <Warning title="On hold: do not use this kit">
                  This kit is held by the study and is not for use: for example after a temperature problem during
                  transport, or because it was handed back. Do not take or give the product; keep it and contact your
                  study site.
                </Warning>
              ) : null}
              {check.expired ? (
                <Warning title="Expired: do not use this kit">
                  The use-by date of this kit has passed. Do not take or give the product. Bring it back to your study
                  site.
                </Warning>
              ) : null}
              {flagged ? null : (
                <p className="badge ok" data-all-clear>
                  Not recalled, not on hold, not expired.
                </p>
              )}
            </>
          ) : (
            <>
              <h1 data-verdict="unknown" className="error">
                This label is not one of ours
              </h1>
              <p>
                <strong>Do not use the product.</strong> Keep the package and contact the study site that gave it to
                you: it may be counterfeit.
              </p>
              <p className="muted">
                If you typed the address instead of scanning the code, check it: it must be exactly the one in the QR
                code.
              </p>
            </>
          )}
          <p className="muted">
            This page says only whether a kit is genuine and whether it is recalled, on hold or expired. It shows no
            product, lot, site, date or personal data.
          </p>
        </main>
      </body>
    </html>
  );
}

const wantsJson = (request: Request) => /application\/json/i.test(request.headers.get("accept") ?? "");

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const check = await checkKitLabel(context.ctx, params.token ?? "");
  const status = check ? 200 : 404;
  if (wantsJson(request)) return Response.json(check ?? { genuine: false }, { status, headers: HEADERS });
  const html = `<!doctype html>${renderToStaticMarkup(<KitCheckPage check={check} />)}`;
  return new Response(html, { status, headers: { ...HEADERS, "content-type": "text/html; charset=utf-8" } });
}
