#!/usr/bin/env node
// Checks the UI's translations; run `node ui/check-i18n.mjs` (exit 1 on problems).
//
// - en and zh-CN have the same keys, and no empty values;
// - each value has the same {placeholders} in both languages;
// - zh-CN values are translated: they hold Chinese characters, unless the key is in SAME_OK;
// - every t("key") in ui/js exists; t() takes a string literal or a variable, never a template
//   literal with ${...} (a computed key cannot be checked). Keys held in variables are checked
//   as string literals of the form "namespace.key" whose namespace the dictionaries use;
// - every value of ui/js/vocab.js, shown through tv(group, value), has its "group.value" key.
// `--list` prints the keys the code uses.

import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, dirname, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const problems = [];
const problem = (m) => problems.push(m);

// Values that may read the same in both languages (names, symbols, formats).
const SAME_OK = new Set(["app.name", "value.none", "error.command", "lang.en", "lang.zh", "auto.format_yaml", "auto.format_json", "cap.co2", "cap.pm25", "cap.pm10", "cap.voc", "token_kind.api", "transport.wifi", "transport.zigbee"]);

const en = (await import(pathToFileURL(join(here, "i18n/en.js")))).default;
const zh = (await import(pathToFileURL(join(here, "i18n/zh.js")))).default;
const { VOCAB } = await import(pathToFileURL(join(here, "js/vocab.js")));
const dicts = { en, "zh-CN": zh };

for (const [lang, d] of Object.entries(dicts)) {
  if (!d || typeof d !== "object") {
    problem(`${lang}: the dictionary is not an object`);
    continue;
  }
  for (const [k, v] of Object.entries(d)) {
    if (typeof v !== "string" || !v.trim()) problem(`${lang}: "${k}" is empty or not text`);
  }
}
for (const k of Object.keys(en)) if (!(k in zh)) problem(`zh-CN lacks "${k}" (en: ${JSON.stringify(en[k])})`);
for (const k of Object.keys(zh)) if (!(k in en)) problem(`en lacks "${k}" (zh-CN: ${JSON.stringify(zh[k])})`);

const placeholders = (s) => [...String(s).matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort().join(",");
const cjk = /[\u3400-\u9fff\uf900-\ufaff]/;
for (const k of Object.keys(en)) {
  if (!(k in zh)) continue;
  if (placeholders(en[k]) !== placeholders(zh[k])) problem(`"${k}": placeholders differ: en {${placeholders(en[k])}} zh-CN {${placeholders(zh[k])}}`);
  if (!SAME_OK.has(k) && !cjk.test(zh[k])) problem(`zh-CN "${k}" looks untranslated: ${JSON.stringify(zh[k])}`);
}

// Vocabularies.
for (const [group, values] of Object.entries(VOCAB)) {
  for (const v of values) if (!(`${group}.${v}` in en)) problem(`vocabulary "${group}" value "${v}": no key "${group}.${v}"`);
}

// Keys used by the code.
function files(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".js") ? [p] : [];
  });
}
const namespaces = new Set(Object.keys(en).map((k) => k.split(".")[0]));
const used = new Set();
for (const file of files(join(here, "js"))) {
  const src = readFileSync(file, "utf8");
  const rel = relative(here, file);
  const lines = src.split("\n");
  lines.forEach((line, i) => {
    const where = `${rel}:${i + 1}`;
    for (const m of line.matchAll(/(?<![\w.])t\(\s*`/g)) problem(`${where}: t() with a template literal; use a literal key or a variable holding one (col ${m.index + 1})`);
    for (const m of line.matchAll(/(?<![\w.])t\(\s*(["'])([^"']*)\1/g)) {
      used.add(m[2]);
      if (!(m[2] in en)) problem(`${where}: t("${m[2]}") has no translation`);
    }
    for (const m of line.matchAll(/(?<![\w.])tv\(\s*(["'])([^"']*)\1/g)) {
      if (!(m[2] in VOCAB)) problem(`${where}: tv("${m[2]}", …): "${m[2]}" is not a vocabulary of js/vocab.js`);
    }
    for (const m of line.matchAll(/(["'])([a-z][a-z0-9_]*\.[a-zA-Z0-9_.-]+)\1/g)) {
      const key = m[2];
      if (!namespaces.has(key.split(".")[0]) || key in VOCAB || /\.(js|css|svg|yaml|json|html)$/.test(key)) continue;
      used.add(key);
      if (!(key in en)) problem(`${where}: "${key}" looks like a translation key but has none`);
    }
  });
}
for (const [group, values] of Object.entries(VOCAB)) for (const v of values) used.add(`${group}.${v}`);
// The engine's sayings are shown by code (js/say.js); automations/tests/say_catalogs.rs checks
// that the catalogs hold exactly the codes the engine has.
for (const k of Object.keys(en)) if (k.startsWith("say.")) used.add(k);

if (process.argv.includes("--list")) console.log([...used].sort().join("\n"));
const unused = Object.keys(en).filter((k) => !used.has(k));
if (unused.length) console.log(`note: ${unused.length} key(s) not seen in the code: ${unused.join(", ")}`);

if (problems.length) {
  console.error(`check-i18n: ${problems.length} problem(s):\n- ${problems.join("\n- ")}`);
  process.exit(1);
}
console.log(`check-i18n: ok (${Object.keys(en).length} keys in en and zh-CN; ${used.size} used by the code)`);
