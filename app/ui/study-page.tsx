/** The layout of every page of one study: top bar, breadcrumb from the study, title, and the action's outcome. */
import { Fragment, type ReactNode } from "react";
import { Link } from "@remix-run/react";
import { TopBar } from "./top-bar.tsx";

export interface Crumb {
  to: string;
  label: string;
}

/**
 * `crumbs` follow the study's own link ("DEMO-001 / Participants / S-001"); `breadcrumb={false}` leaves the
 * line out (the study's home page). `flash` is an action's outcome: an error (role="alert") wins over a message
 * (role="status").
 */
export function StudyPage({
  user,
  study,
  title,
  crumbs = [],
  breadcrumb = true,
  flash,
  children,
}: {
  user: { fullName: string; email: string };
  study: string;
  title: ReactNode;
  crumbs?: Crumb[];
  breadcrumb?: boolean;
  flash?: { error?: string | null; message?: string | null } | null;
  children?: ReactNode;
}) {
  return (
    <>
      <TopBar user={user} />
      <main className="page">
        {breadcrumb ? (
          <p>
            <Link to={`/studies/${study}`}>{study}</Link>
            {crumbs.map((c) => (
              <Fragment key={c.to}>
                {" / "}
                <Link to={c.to}>{c.label}</Link>
              </Fragment>
            ))}
          </p>
        ) : null}
        <h1>{title}</h1>
        {flash?.error ? (
          <p className="error" role="alert">
            {flash.error}
          </p>
        ) : flash?.message ? (
          <p role="status">{flash.message}</p>
        ) : null}
        {children}
      </main>
    </>
  );
}
