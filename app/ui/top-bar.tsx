import { Form, Link } from "@remix-run/react";

export function TopBar({ user }: { user: { fullName: string; email: string } | null }) {
  return (
    <header className="top">
      <nav>
        <Link to="/">TrialSeal</Link>
        <Link to="/status" className="nav">
          Status
        </Link>
      </nav>
      {user ? (
        <Form method="post" action="/logout">
          <Link to="/account" className="nav">
            {user.fullName}
          </Link>{" "}
          <button type="submit" className="link">
            Sign out
          </button>
        </Form>
      ) : null}
    </header>
  );
}
