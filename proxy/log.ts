import { pino } from "pino";

export type Logger = pino.Logger;

/** Structured JSON logs on stderr; stdout stays for command output (validate, demo). */
export function createLogger(level: string = process.env.REMORA_LOG_LEVEL ?? "info"): Logger {
  return pino({ base: { name: "remora" }, level }, pino.destination({ fd: 2, sync: false }));
}

/** A logger that drops everything (tests, embedding). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
