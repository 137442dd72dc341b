// How numbers read on the page: sizes in binary units (a 64 MiB limit reads "64 MiB", never
// "67108864 bytes"), speeds, durations and ages.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function bytes(count) {
  if (count === null || count === undefined || Number.isNaN(count)) return "–";
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits).replace(/\.0$/, "")} ${UNITS[unit]}`;
}

export function rate(bytesPerSecond) {
  return bytesPerSecond > 0 ? `${bytes(bytesPerSecond)}/s` : "–";
}

// "1 h 02 min", "3 min 07 s", "12 s", "0.4 s".
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, seconds);
  if (s < 0.1) return "< 0.1 s";
  if (s < 10) return `${s.toFixed(1).replace(/\.0$/, "")} s`;
  const whole = Math.round(s);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const rest = whole % 60;
  if (h) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m) return `${m} min ${String(rest).padStart(2, "0")} s`;
  return `${rest} s`;
}

export function percent(fraction) {
  return `${Math.floor(Math.max(0, Math.min(1, fraction || 0)) * 100)}%`;
}

export function seconds(fromIso, toIso) {
  if (!fromIso) return null;
  const end = toIso ? Date.parse(toIso) : Date.now();
  return Math.max(0, (end - Date.parse(fromIso)) / 1000);
}

// "just now", "42 s ago", "5 min ago", "3 h ago", then the date.
export function age(iso) {
  const s = seconds(iso);
  if (s === null) return "–";
  if (s < 5) return "just now";
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

export function clock(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}

// The server's messages count in bytes ("exceeds the limit of 67108864 bytes"): the page
// shows them in the units it uses everywhere else.
export function humanizeBytes(text) {
  return String(text).replace(/\b(\d{4,}) bytes\b/g, (_, n) => bytes(Number(n)));
}
