// Times and sizes the way a person reads them, in the page's language.

import { language } from "./i18n.js";

const relative = new Intl.RelativeTimeFormat(language, { style: "short", numeric: "auto" });

/** 65_000 -> "1:05", 3_723_000 -> "1:02:03". */
export function duration(ms) {
  const total = Math.max(0, Math.round(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

/** A transcript timestamp: 61_250 -> "01:01.2" (hours shown only when needed). */
export function timestamp(ms) {
  const tenths = Math.floor((ms % 1000) / 100);
  const total = Math.floor(ms / 1000);
  const hours = Math.floor(total / 3600);
  const mm = String(Math.floor((total % 3600) / 60)).padStart(2, "0");
  const ss = String(total % 60).padStart(2, "0");
  return `${hours ? `${hours}:` : ""}${mm}:${ss}.${tenths}`;
}

/** "now", "12 sec. ago", "3 min. ago", "2 hr. ago" (in English; "12秒钟前" in Chinese). */
export function ago(iso, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 90) return relative.format(-seconds, "second");
  if (seconds < 90 * 60) return relative.format(-Math.round(seconds / 60), "minute");
  return relative.format(-Math.round(seconds / 3600), "hour");
}

export function bytes(size) {
  if (size === null || size === undefined) return "";
  const units = ["bytes", "KB", "MB", "GB"];
  let value = size;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

export function dateTime(iso) {
  return iso ? new Date(iso).toLocaleString(language) : "";
}
