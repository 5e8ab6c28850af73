/**
 * The system's Chromium for the browser tests: Debian's `chromium` package,
 * installed with apt-get when missing (no browser build can be downloaded
 * here, so Playwright's own browsers are not used).
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];

function found(): string | undefined {
  return CANDIDATES.find((path) => existsSync(path));
}

export function chromiumPath(): string {
  const existing = found();
  if (existing) return existing;
  console.log("chromium is missing: installing Debian's chromium package with apt-get (a minute or two) ...");
  const asRoot = process.getuid?.() === 0 ? [] : ["sudo", "-n"];
  const apt = (args: string[]) => {
    const [command, ...rest] = [...asRoot, "apt-get", ...args];
    execFileSync(command as string, rest, {
      stdio: "inherit",
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
  };
  try {
    apt(["install", "-y", "--no-install-recommends", "chromium"]);
  } catch {
    apt(["update"]);
    apt(["install", "-y", "--no-install-recommends", "chromium"]);
  }
  const installed = found();
  if (!installed) throw new Error("apt-get installed chromium, but no chromium binary is in /usr/bin");
  return installed;
}
