// Renders every Kustomize overlay of deploy/k8s with `kubectl kustomize`, validates each object
// offline against the Kubernetes API schemas (kubernetes-models), and checks the deployment
// invariants: probes on every container, non-root, read-only root filesystem, all capabilities
// dropped, resources set, secrets only as files, no secret-looking value in a ConfigMap, images
// pinned by tag (never latest), and per overlay what the issue asks (dev: one broker, memory
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

  test(`${overlay}: the broker has native gRPC probes, preStop and a grace period that covers shutdown`, () => {
    const broker = podSpecs(objects).find((p) => p.owner === 'Deployment/leyr-broker');
    assert.ok(broker);
    const c = broker.spec.containers.find((x) => x.name === 'broker');
    assert.ok(c.livenessProbe.grpc?.port, 'liveness is a gRPC probe');
    assert.ok(c.readinessProbe.grpc?.port, 'readiness is a gRPC probe');
    assert.ok(c.lifecycle?.preStop, 'preStop');
    const seconds = (flag) => {
      const a = c.args.find((x) => x.startsWith(`--${flag}=`));
      return a ? Number(a.split('=')[1].replace(/s$/, '')) : 0;
    };
    const preStop = Number(c.lifecycle.preStop.exec?.command?.at(-1) ?? 0);
    assert.ok(preStop + seconds('shutdown_delay') + seconds('shutdown_grace') <
              broker.spec.terminationGracePeriodSeconds, 'grace period covers preStop + delay + grace');
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
