/** @jsxImportSource hono/jsx */
import type { Child } from "hono/jsx";

/**
 * The operator page's shell: no data and no secret in it, so it is served
 * without the token; everything it shows comes from fragments fetched with
 * the token by /admin/ui/app.js. No inline script or style: the page runs
 * under a Content-Security-Policy that allows only this origin's files.
 */
export function Shell() {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>path-stats archiver</title>
        <link rel="stylesheet" href="/admin/ui/app.css" />
        <script src="/admin/ui/app.js" defer />
      </head>
      <body>
        <header>
          <h1>path-stats archiver</h1>
          <button type="button" id="forget-token" hidden>
            Forget token
          </button>
        </header>
        <main>
          <form id="token-form" hidden>
            <label for="token">Admin token</label>
            <input id="token" name="token" type="password" autocomplete="off" required />
            <button type="submit">Use token</button>
            <p class="hint">Kept in this tab only (sessionStorage), sent as the bearer header.</p>
          </form>
          <p id="error" role="alert" class="error" hidden />
          <section id="health" aria-label="Health" />
          <section id="overview" aria-label="Last 30 days" />
          <section id="day" aria-label="One day" />
          <section id="dead-letters" aria-label="Dead letters" />
        </main>
        <dialog id="confirm">
          <form method="dialog">
            <p id="confirm-text" />
            <menu>
              <button value="cancel" type="submit">
                Cancel
              </button>
              <button value="ok" type="submit" id="confirm-ok">
                Confirm
              </button>
            </menu>
          </form>
        </dialog>
      </body>
    </html>
  );
}

/** A button that asks the API to change something, after a confirmation naming what will happen. */
export function ActionButton(props: {
  method: "POST";
  path: string;
  body?: unknown;
  confirm: string;
  refresh: string;
  children: Child;
}) {
  return (
    <button
      type="button"
      class="action"
      data-method={props.method}
      data-path={props.path}
      data-body={props.body === undefined ? undefined : JSON.stringify(props.body)}
      data-confirm={props.confirm}
      data-refresh={props.refresh}
    >
      {props.children}
    </button>
  );
}
