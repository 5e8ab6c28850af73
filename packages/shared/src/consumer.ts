import { logEvent } from "./log.ts";

/** Retry delays double with attempts from `firstDelay` (5 s, 10 s, 20 s …), capped at 5 minutes. */
export function retryDelaySeconds(attempts: number, firstDelay: number): number {
  return Math.min(300, firstDelay * 2 ** Math.max(0, attempts - 1));
}

/**
 * Sends a message no retry can help straight to its dead-letter queue, so it
 * is kept for inspection and replay instead of being retried to no end or
 * dropped, then acks it.
 */
export async function sendToDeadLetters(
  deadLetters: { send(body: unknown, options?: { contentType?: "json" }): Promise<unknown> },
  message: { id: string; body: unknown; ack(): void },
  event: string,
  reason: string,
): Promise<void> {
  logEvent(event, { messageId: message.id, error: reason });
  await deadLetters.send(message.body, { contentType: "json" });
  message.ack();
}

/** Bytes as lowercase hex. */
export function toHex(bytes: ArrayBuffer): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
