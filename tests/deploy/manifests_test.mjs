// Renders every Kustomize overlay of deploy/k8s with `kubectl kustomize`, validates each object
// offline against the Kubernetes API schemas (kubernetes-models), and checks the deployment
// invariants: probes on every container, non-root, read-only root filesystem, all capabilities
// dropped, resources set, secrets only as files, no secret-looking value in a ConfigMap, images
// pinned by tag (never latest); the broker's probes on the plaintext health port that broker.json's
// health_listen opens, the metrics ports of admin_listen declared, annotated for Prometheus and
// open to the monitoring namespace, grace periods that cover preStop + --shutdown_delay +
// --shutdown_grace; and per overlay what the issue asks (dev: one broker, memory
// store, the sandbox; production: >= 3 brokers, TLS, HPA, PDB, NetworkPolicy, Ingress at the
// redirect URI, headless Service).
//
//   node manifests_test.mjs DEPLOY_K8S_DIR [KUBECTL]
// Runs under node's test runner (node --test) semantics: prints TAP and exits non-zero on failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';

const k8sDir = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '../../deploy/k8s'));
const kubectl = process.argv[3] ?? 'kubectl';
const overlays = fs.readdirSync(path.join(k8sDir, 'overlays')).sort();

function render(overlay) {
  const out = execFileSync(kubectl, ['kustomize', path.join(k8sDir, 'overlays', overlay)],
                           { encoding: 'utf8', maxBuffer: 64 << 20 });
  return yaml.loadAll(out).filter(Boolean);
}

// apiVersion "apps/v1" -> module "kubernetes-models/apps/v1/Deployment"; core "v1" -> "v1/...".
async function modelFor(obj) {
  const mod = await import(`kubernetes-models/${obj.apiVersion}/${obj.kind}`);
  return mod[obj.kind] ?? mod.default;
}

function podSpecs(objects) {
  return objects.filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(o.kind))
      .map((o) => ({ owner: `${o.kind}/${o.metadata.name}`, spec: o.spec.template.spec, obj: o }));
}

function pod(objects, deployment) {
  const found = podSpecs(objects).find((p) => p.owner === `Deployment/${deployment}`);
  assert.ok(found, `Deployment/${deployment}`);
  return found;
}

function container(objects, deployment, name) {
  const c = pod(objects, deployment).spec.containers.find((x) => x.name === name);
  assert.ok(c, `container ${name} in Deployment/${deployment}`);
  return c;
}

function declaredPort(c, name) {
  return (c.ports ?? []).find((p) => p.name === name)?.containerPort;
}

// The JSON file `key` of the generated ConfigMap `name` (kustomize appends a content hash).
function configJson(objects, name, key) {
  const m = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith(`${name}-`));
  assert.ok(m?.data?.[key], `ConfigMap ${name} has ${key}`);
  return JSON.parse(m.data[key]);
}

// "0.0.0.0:50052", "[::]:9090" -> the port number.
function portOf(address) {
  const m = /:(\d+)$/.exec(address);
  return m ? Number(m[1]) : undefined;
}

// Abseil/Go-style durations as the servers' flags take them ("5s", "1m30s", "500ms"), and the
// JSON durations of the configuration files ("10s", "1.5s"); in seconds.
function durationSeconds(text) {
  const units = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, ns: 1e-9 };
  let total = 0;
  let rest = String(text);
  if (rest === '0') return 0;
  while (rest.length) {
    const m = /^(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)/.exec(rest);
    assert.ok(m, `duration ${text}`);
    total += Number(m[1]) * units[m[2]];
    rest = rest.slice(m[0].length);
  }
  return total;
}

// --flag=VALUE or --flag-with-hyphens=VALUE (the servers accept both), in seconds; undefined
// when absent.
function flagSeconds(c, flag) {
  const spellings = [`--${flag}=`, `--${flag.replaceAll('_', '-')}=`];
  const arg = [...(c.command ?? []), ...(c.args ?? [])].find((a) => spellings.some((p) => a.startsWith(p)));
  return arg === undefined ? undefined : durationSeconds(arg.slice(arg.indexOf('=') + 1));
}

// A preStop hook's sleep in seconds (exec ["sleep", N] or the sleep action), 0 without one.
function preStopSeconds(c) {
  const hook = c.lifecycle?.preStop;
  if (!hook) return 0;
  if (hook.sleep) return Number(hook.sleep.seconds);
  const command = hook.exec?.command ?? [];
  assert.match(command[0] ?? '', /(^|\/)sleep$/, 'preStop is a sleep (its length is known)');
  return durationSeconds(/^\d+(\.\d+)?$/.test(command.at(-1)) ? `${command.at(-1)}s` : command.at(-1));
}

const SECRET_LOOKING = [
  /-----BEGIN [A-Z ]*PRIVATE KEY-----/, /"?(client_secret|password|secret|token|key_base64)"?\s*:\s*"[^"]+"/i,
  /\b[A-Za-z0-9+/]{40,}={0,2}/, /\b[a-f0-9]{48,}\b/i,
];

for (const overlay of overlays) {
  const objects = render(overlay);

  test(`${overlay}: renders objects`, () => {
    assert.ok(objects.length > 5, `only ${objects.length} objects`);
  });

  test(`${overlay}: every object validates against the Kubernetes schemas`, async () => {
    for (const obj of objects) {
      const Model = await modelFor(obj);
      assert.ok(Model, `no model for ${obj.apiVersion} ${obj.kind}`);
      assert.doesNotThrow(() => new Model(obj).validate(),
                          `${obj.kind}/${obj.metadata.name} is not valid`);
    }
  });

  test(`${overlay}: invalid objects are refused by the validator`, async () => {
    const dep = structuredClone(objects.find((o) => o.kind === 'Deployment'));
    dep.spec.replicas = 'three';
    const Model = await modelFor(dep);
    assert.throws(() => new Model(dep).validate());
  });

  test(`${overlay}: every container has probes, resources, a pinned image and a locked-down context`, () => {
    const pods = podSpecs(objects);
    assert.ok(pods.length >= 2);
    for (const { owner, spec } of pods) {
      assert.equal(spec.securityContext?.runAsNonRoot, true, `${owner}: pod runAsNonRoot`);
      assert.ok(spec.securityContext?.runAsUser > 0, `${owner}: runAsUser`);
      assert.equal(spec.automountServiceAccountToken, false, `${owner}: no service account token`);
      assert.ok(spec.terminationGracePeriodSeconds > 0, `${owner}: terminationGracePeriodSeconds`);
      for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
        const where = `${owner}/${c.name}`;
        assert.ok(c.livenessProbe, `${where}: livenessProbe`);
        assert.ok(c.readinessProbe, `${where}: readinessProbe`);
        assert.match(c.image, /^[^@]+:[A-Za-z0-9_.-]+$/, `${where}: image ${c.image} has a tag`);
        assert.doesNotMatch(c.image, /:latest$/, `${where}: image on latest`);
        assert.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory, `${where}: requests`);
        assert.ok(c.resources?.limits?.cpu && c.resources?.limits?.memory, `${where}: limits`);
        const sc = c.securityContext ?? {};
        assert.equal(sc.readOnlyRootFilesystem, true, `${where}: readOnlyRootFilesystem`);
        assert.equal(sc.allowPrivilegeEscalation, false, `${where}: allowPrivilegeEscalation`);
        assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${where}: drop ALL capabilities`);
        assert.notEqual(sc.runAsUser, 0, `${where}: not root`);
        // Secrets only as files: no env var from a Secret.
        for (const e of c.env ?? []) {
          assert.ok(!e.valueFrom?.secretKeyRef, `${where}: env ${e.name} from a Secret`);
        }
        assert.ok(!(c.envFrom ?? []).some((e) => e.secretRef), `${where}: envFrom a Secret`);
      }
    }
  });

  test(`${overlay}: every broker probe is a gRPC probe on the plaintext health port of broker.json`, () => {
    const c = container(objects, 'leyr-broker', 'broker');
    const config = configJson(objects, 'leyr-broker-config', 'broker.json');
    const health = declaredPort(c, 'grpc-health');
    assert.ok(health, 'container port grpc-health is declared');
    assert.ok(config.health_listen, 'broker.json sets health_listen');
    assert.equal(portOf(config.health_listen), health, 'health_listen is on the grpc-health port');
    // The health port is a port of its own, never the API port (TLS in production).
    assert.ok(!(config.listen ?? []).some((a) => portOf(a) === health), 'health port is not in listen');
    assert.notEqual(declaredPort(c, 'grpc'), health, 'grpc and grpc-health differ');
    for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
      assert.ok(c[kind], `${kind} is set`);
      assert.equal(c[kind].grpc?.port, health, `${kind} is a gRPC probe on the health port ${health}`);
    }
    assert.equal(c.readinessProbe.grpc.service, 'leyr.broker.v1.BrokerService',
                 'readiness asks for leyr.broker.v1.BrokerService');
  });

  test(`${overlay}: broker and shim serve metrics on a declared port that Prometheus is told about`, () => {
    for (const [deployment, name, map, file] of [
      ['leyr-broker', 'broker', 'leyr-broker-config', 'broker.json'],
      ['leyr-callback-shim', 'shim', 'leyr-callback-shim-config', 'shim.json'],
    ]) {
      const c = container(objects, deployment, name);
      const config = configJson(objects, map, file);
      const metrics = declaredPort(c, 'metrics');
      assert.ok(metrics, `${deployment}: container port metrics is declared`);
      assert.ok(config.admin_listen, `${file} sets admin_listen`);
      assert.equal(portOf(config.admin_listen), metrics, `${file}: admin_listen is on the metrics port`);
      const annotations = pod(objects, deployment).obj.spec.template.metadata.annotations ?? {};
      assert.equal(annotations['prometheus.io/scrape'], 'true', `${deployment}: prometheus.io/scrape`);
      assert.equal(annotations['prometheus.io/port'], String(metrics), `${deployment}: prometheus.io/port`);
      assert.equal(annotations['prometheus.io/path'], '/metrics', `${deployment}: prometheus.io/path`);
      // Every NetworkPolicy that selects the pod lets the monitoring namespace reach the port.
      const labels = pod(objects, deployment).obj.spec.template.metadata.labels;
      const policies = objects.filter((o) => o.kind === 'NetworkPolicy' && Object.entries(
          o.spec.podSelector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v));
      for (const np of policies) {
        assert.ok(np.spec.ingress.some((r) => r.ports?.some((p) => p.port === metrics) &&
                                          r.from?.some((f) => !f.podSelector &&
                                              f.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'monitoring')),
                  `NetworkPolicy/${np.metadata.name} admits port ${metrics} from the monitoring namespace`);
      }
    }
  });

  test(`${overlay}: grace periods cover preStop + --shutdown_delay + --shutdown_grace (shim: broker_timeout)`, () => {
    const broker = pod(objects, 'leyr-broker');
    const c = container(objects, 'leyr-broker', 'broker');
    const delay = flagSeconds(c, 'shutdown_delay');
    const grace = flagSeconds(c, 'shutdown_grace') ?? 10;  // the broker's default
    assert.ok(delay > 0, 'the broker has --shutdown_delay > 0 (endpoints move before calls are refused)');
    assert.ok(preStopSeconds(c) + delay + grace < broker.spec.terminationGracePeriodSeconds,
              `broker: preStop ${preStopSeconds(c)} + delay ${delay} + grace ${grace} < ` +
              `terminationGracePeriodSeconds ${broker.spec.terminationGracePeriodSeconds}`);
    // The shim: the delay, then the callbacks in progress, each bounded by broker_timeout.
    const shim = pod(objects, 'leyr-callback-shim');
    const s = container(objects, 'leyr-callback-shim', 'shim');
    const shimDelay = flagSeconds(s, 'shutdown_delay');
    const brokerTimeout = durationSeconds(
        configJson(objects, 'leyr-callback-shim-config', 'shim.json').broker_timeout ?? '10s');
    assert.ok(shimDelay > 0, 'the shim has --shutdown_delay > 0');
    assert.ok(preStopSeconds(s) + shimDelay + brokerTimeout < shim.spec.terminationGracePeriodSeconds,
              'shim: preStop + delay + broker_timeout < terminationGracePeriodSeconds');
  });

  test(`${overlay}: the shim's probes are HTTP probes on /healthz of its listen port`, () => {
    const s = container(objects, 'leyr-callback-shim', 'shim');
    const listen = portOf(configJson(objects, 'leyr-callback-shim-config', 'shim.json').listen);
    for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
      const get = s[kind]?.httpGet;
      assert.equal(get?.path, '/healthz', `shim ${kind} is an HTTP probe on /healthz`);
      const port = typeof get.port === 'string' ? declaredPort(s, get.port) : get.port;
      assert.equal(port, listen, `shim ${kind} on the listen port ${listen}`);
    }
  });

  test(`${overlay}: broker and shim pods get no Service environment variables`, () => {
    // LEYR_BROKER_* / LEYR_SHIM_* variables are configuration overrides; Kubernetes' Service
    // variables of other Services named leyr-broker-* or leyr-shim-* would stop the server.
    for (const deployment of ['leyr-broker', 'leyr-callback-shim']) {
      assert.equal(pod(objects, deployment).spec.enableServiceLinks, false,
                   `${deployment}: enableServiceLinks false`);
    }
  });

  test(`${overlay}: configuration in ConfigMaps without secrets, mounted as files`, () => {
    const maps = objects.filter((o) => o.kind === 'ConfigMap');
    assert.ok(maps.some((m) => m.metadata.name.startsWith('leyr-broker-config')));
    for (const m of maps) {
      for (const [key, value] of Object.entries(m.data ?? {})) {
        for (const pattern of SECRET_LOOKING) {
          assert.doesNotMatch(value, pattern, `ConfigMap ${m.metadata.name} key ${key} looks secret`);
        }
        if (key.endsWith('.json')) JSON.parse(value);
      }
    }
    assert.ok(!objects.some((o) => o.kind === 'Secret' && (o.data || o.stringData)),
              'no Secret values are committed');
  });

  test(`${overlay}: the broker takes gRPC only from the shim and labelled callers`, () => {
    const np = objects.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'leyr-broker');
    assert.ok(np);
    const grpcRule = np.spec.ingress.find((r) => r.ports.some((p) => p.port === 50051));
    assert.ok(grpcRule.from?.length, 'gRPC port restricted to listed peers');
    const labels = grpcRule.from.map((f) => JSON.stringify(f.podSelector?.matchLabels ?? {}));
    assert.ok(labels.some((l) => l.includes('leyr-callback-shim')));
    assert.ok(labels.some((l) => l.includes('leyr.io/broker-client')));
  });
}

function brokerConfig(objects) {
  const m = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('leyr-broker-config'));
  return JSON.parse(m.data['broker.json']);
}

if (overlays.includes('dev')) {
  test('dev: one broker, memory store, the sandbox', () => {
    const objects = render('dev');
    const broker = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'leyr-broker');
    assert.equal(broker.spec.replicas, 1);
    assert.equal(brokerConfig(objects).store, 'memory');
    assert.ok(objects.some((o) => o.kind === 'Deployment' && o.metadata.name === 'leyr-sandbox'));
  });
}

if (overlays.includes('production')) {
  test('production: >= 3 brokers, HPA, PDB, Ingress, headless Service, TLS from Secret files', () => {
    const objects = render('production');
    const find = (kind, name) => objects.find((o) => o.kind === kind && o.metadata.name === name);
    const broker = find('Deployment', 'leyr-broker');
    assert.ok(broker.spec.replicas >= 3);
    const hpa = find('HorizontalPodAutoscaler', 'leyr-broker');
    assert.ok(hpa.spec.minReplicas >= 3);
    assert.equal(hpa.spec.scaleTargetRef.name, 'leyr-broker');
    assert.ok(find('PodDisruptionBudget', 'leyr-broker'));
    assert.ok(!objects.some((o) => o.kind === 'Deployment' && o.metadata.name === 'leyr-sandbox'));
    const headless = find('Service', 'leyr-broker-headless');
    assert.equal(headless.spec.clusterIP, 'None');
    const config = brokerConfig(objects);
    assert.notEqual(config.plaintext_development, true);
    // Several replicas share the PostgreSQL store; its password comes from a mounted Secret.
    assert.equal(config.store, 'postgres');
    const pgMount = broker.spec.template.spec.containers[0].volumeMounts.find(
        (m) => config.postgres.password_file.startsWith(m.mountPath + '/'));
    assert.ok(pgMount, 'postgres.password_file under a mount');
    // TLS files come from a mounted Secret.
    const mounts = broker.spec.template.spec.containers[0].volumeMounts;
    const volumes = broker.spec.template.spec.volumes;
    const tlsMount = mounts.find((m) => config.tls.cert_file.startsWith(m.mountPath + '/'));
    assert.ok(tlsMount, 'cert_file under a mount');
    assert.ok(volumes.find((v) => v.name === tlsMount.name).secret, 'TLS volume is a Secret');
    // The shim's Ingress serves exactly the path of the registered redirect URI.
    const redirect = new URL(config.connections[0].redirect_uri);
    const ingress = find('Ingress', 'leyr-callback-shim');
    const rule = ingress.spec.rules.find((r) => r.host === redirect.hostname);
    assert.ok(rule, 'Ingress host is the redirect URI host');
    assert.ok(rule.http.paths.some((p) => p.path === redirect.pathname &&
                                   p.backend.service.name === 'leyr-callback-shim'));
    assert.ok(ingress.spec.tls.some((t) => t.hosts.includes(redirect.hostname)));
  });
}
