// Checks Kubernetes manifests without a cluster: each document against the
// Kubernetes API's own schema (the kubernetes-models package, generated from
// the API's OpenAPI spec), then what the API server or the kubelet would
// refuse later and a schema cannot see: a workload's selector that does not
// match its pod labels, a Service that selects no pod here or names a port
// no container has, a ConfigMap volume or Secret that nothing creates, an
// extended resource (a GPU) whose request differs from its limit.
//
//   node deploy/k8s/validate.mjs FILE.yaml [--secret NAME]...
//
// --secret NAME: a Secret made outside the file (`kubectl create secret`).
// Not checked: unknown fields (a misspelt optional key passes; the models'
// validators allow extra properties) and quantities against each other.
// Run by deploy/k8s/validate.sh, which installs the two packages it needs.
import fs from 'node:fs';
import * as yaml from 'js-yaml';

const args = process.argv.slice(2);
const file = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--secret');
const outside = new Set(args.filter((a, i) => args[i - 1] === '--secret'));
if (!file) {
  console.error('usage: node validate.mjs FILE.yaml [--secret NAME]...');
  process.exit(2);
}

// apiVersion/kind -> the model's module (kubernetes-models' layout).
const modulePath = (apiVersion, kind) => {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : [null, apiVersion];
  return group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
};

const problems = [];
const where = (d) => `${d.kind} ${d.metadata?.name ?? '(no name)'}`;
let docs;
try {
  docs = yaml.loadAll(fs.readFileSync(file, 'utf8')).filter(Boolean);
} catch (e) {
  console.error(`${file}: ${e.message}`);
  process.exit(1);
}

if (docs.length === 0) {
  console.log(`${file}: no Kubernetes objects in it`);
  process.exit(1);
}

// API versions the API server no longer serves.
const removed = { 'extensions/v1beta1': '1.16', 'apps/v1beta1': '1.16', 'apps/v1beta2': '1.16',
                  'batch/v1beta1': '1.25', 'policy/v1beta1': '1.25' };
// What a name must look like (RFC 1123 subdomain) for the kinds here.
const dnsName = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

for (const d of docs) {
  if (d.apiVersion in removed) {
    problems.push(`${where(d)}: apiVersion ${d.apiVersion} was removed in Kubernetes ${removed[d.apiVersion]}`);
    continue;
  }
  const name = d.metadata?.name;
  if (typeof name === 'string' && (name.length > 253 || !dnsName.test(name)))
    problems.push(`${where(d)}: metadata.name '${name}' must be lowercase letters, digits, '-' and '.' ` +
                  `(RFC 1123), at most 253 characters`);
  if (!d.apiVersion || !d.kind) {
    problems.push(`a document without apiVersion or kind: ${JSON.stringify(d).slice(0, 80)}`);
    continue;
  }
  let mod;
  try {
    mod = await import(modulePath(d.apiVersion, d.kind));
  } catch {
    problems.push(`${where(d)}: no schema for ${d.apiVersion} ${d.kind} (a typo, or not a built-in kind)`);
    continue;
  }
  const Model = mod[d.kind] ?? mod.default;
  try {
    new Model(d).validate();
  } catch (e) {
    problems.push(`${where(d)}: ${e.message}`);
  }
}

// What the file itself defines, by kind.
const named = (kind) => new Set(docs.filter((d) => d.kind === kind).map((d) => d.metadata?.name));
const configMaps = named('ConfigMap');
const secrets = new Set([...named('Secret'), ...outside]);

// Every pod template, with its owner.
const pods = [];
for (const d of docs) {
  if (['Deployment', 'DaemonSet', 'StatefulSet', 'ReplicaSet', 'Job'].includes(d.kind) && d.spec?.template)
    pods.push({ owner: d, template: d.spec.template });
  if (d.kind === 'Pod') pods.push({ owner: d, template: { metadata: d.metadata, spec: d.spec } });
}

const matches = (selector, labels) =>
  Object.entries(selector ?? {}).every(([k, v]) => (labels ?? {})[k] === v);

for (const { owner, template } of pods) {
  const labels = template.metadata?.labels ?? {};
  const sel = owner.spec?.selector?.matchLabels;
  if (owner.kind !== 'Job' && owner.kind !== 'Pod' && sel && !matches(sel, labels))
    problems.push(`${where(owner)}: spec.selector.matchLabels ${JSON.stringify(sel)} does not match the pod ` +
                  `template's labels ${JSON.stringify(labels)} (the API server refuses it)`);
  const spec = template.spec ?? {};
  for (const v of spec.volumes ?? []) {
    if (v.configMap && !v.configMap.optional && !configMaps.has(v.configMap.name))
      problems.push(`${where(owner)}: volume '${v.name}' mounts ConfigMap '${v.configMap.name}', which this file ` +
                    `does not define (the pod would wait in ContainerCreating)`);
    if (v.secret && !v.secret.optional && !secrets.has(v.secret.secretName))
      problems.push(`${where(owner)}: volume '${v.name}' mounts Secret '${v.secret.secretName}', which nothing ` +
                    `creates (pass --secret NAME for one made with kubectl create secret)`);
  }
  const volumeNames = new Set((spec.volumes ?? []).map((v) => v.name));
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
    for (const e of c.env ?? []) {
      const ref = e.valueFrom?.secretKeyRef;
      if (ref && !ref.optional && !secrets.has(ref.name))
        problems.push(`${where(owner)}: container '${c.name}' env ${e.name} reads Secret '${ref.name}', which ` +
                      `nothing creates (pass --secret NAME for one made with kubectl create secret)`);
      const cm = e.valueFrom?.configMapKeyRef;
      if (cm && !cm.optional && !configMaps.has(cm.name))
        problems.push(`${where(owner)}: container '${c.name}' env ${e.name} reads ConfigMap '${cm.name}', which ` +
                      `this file does not define`);
    }
    // A probe's named port must be one of the container's own.
    const ports = new Set((c.ports ?? []).map((p) => p.name));
    for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
      const port = c[probe]?.httpGet?.port ?? c[probe]?.tcpSocket?.port ?? c[probe]?.grpc?.port;
      if (typeof port === 'string' && !ports.has(port))
        problems.push(`${where(owner)}: container '${c.name}' ${probe} uses port '${port}', which the container ` +
                      `does not name (the kubelet would fail the probe)`);
    }
    for (const e of c.env ?? []) {
      const field = e.valueFrom?.resourceFieldRef?.resource;
      if (field && !/^(limits|requests)\.(cpu|memory|ephemeral-storage|hugepages-.+)$/.test(field))
        problems.push(`${where(owner)}: container '${c.name}' env ${e.name} reads resource '${field}'; it must be ` +
                      `limits.cpu, limits.memory, requests.cpu, ... (limits or requests, then the resource)`);
    }
    for (const m of c.volumeMounts ?? [])
      if (!volumeNames.has(m.name))
        problems.push(`${where(owner)}: container '${c.name}' mounts volume '${m.name}', which the pod does not have`);
    // Extended resources (a GPU from a device plugin) cannot be overcommitted:
    // given in both, the request must equal the limit.
    const req = c.resources?.requests ?? {}, lim = c.resources?.limits ?? {};
    for (const [name, value] of Object.entries(req)) {
      if (!name.includes('/')) continue;
      if (!(name in lim))
        problems.push(`${where(owner)}: container '${c.name}' requests ${name} with no limit (an extended ` +
                      `resource needs its limit)`);
      else if (String(lim[name]) !== String(value))
        problems.push(`${where(owner)}: container '${c.name}' requests ${name}: ${value} but limits it to ` +
                      `${lim[name]} (an extended resource's request must equal its limit)`);
    }
  }
}

for (const s of docs.filter((d) => d.kind === 'Service')) {
  const sel = s.spec?.selector;
  if (!sel) continue;
  const chosen = pods.filter(({ template }) => matches(sel, template.metadata?.labels));
  if (chosen.length === 0) {
    problems.push(`${where(s)}: selector ${JSON.stringify(sel)} selects no pod template in this file`);
    continue;
  }
  const portNames = new Set(chosen.flatMap(({ template }) =>
    (template.spec?.containers ?? []).flatMap((c) => (c.ports ?? []).map((p) => p.name))));
  for (const p of s.spec?.ports ?? [])
    if (typeof p.targetPort === 'string' && !portNames.has(p.targetPort))
      problems.push(`${where(s)}: port '${p.name ?? p.port}' targets '${p.targetPort}', a port name no selected ` +
                    `container has`);
}

for (const p of problems) console.log(`${file}: ${p}`);
if (problems.length) process.exit(1);
console.log(`${file}: ${docs.length} documents valid (${docs.map(where).join(', ')})`);
