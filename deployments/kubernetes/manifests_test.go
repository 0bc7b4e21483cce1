// Package kubernetes_test checks the Kubernetes manifests in this folder:
// every document decodes strictly into the official API types of its kind
// (k8s.io/api), and the manifests agree with the services they run: probes
// on the admin port each config listens on, environment variables that are
// real config overrides (the service's own loader, internal/config.Load,
// loads its config with them, the mounted ConfigMap and dummy Secret files),
// references to ConfigMaps and Secrets that exist, the HPA's target, the
// PodDisruptionBudgets' selectors, TLS on to Kafka, ClickHouse and on the
// privacy API, and what the NetworkPolicies admit to each port.
package kubernetes_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/enricher/pipeline"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/config/configtest"
	"github.com/consentflow/consentflow/internal/testenv"
	"github.com/consentflow/consentflow/sink/chwriter"
)

const (
	kustomizationFile = "kustomization.yaml"
	// secretsExample lists the Secrets; it is not applied by kustomize, so
	// an apply never overwrites real keys.
	secretsExample = "secrets.example.yaml"
	image          = "consentflow:latest"
	shippedConfigs = "../../configs"
)

// kinds maps apiVersion/kind to a constructor of the official type.
var kinds = map[string]func() any{
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                    func() any { return &appsv1.StatefulSet{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return &networkingv1.NetworkPolicy{} },
}

// strictUnmarshal decodes YAML into out, failing on duplicate keys and on
// fields out does not have.
func strictUnmarshal(doc []byte, out any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the document")
	}
	return nil
}

// decodeDoc decodes one manifest document into its official type; nil, nil
// for a document of comments only.
func decodeDoc(doc []byte) (any, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	if string(bytes.TrimSpace(js)) == "null" {
		return nil, nil
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return nil, err
	}
	newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("apiVersion %q kind %q: not a kind these manifests may use", tm.APIVersion, tm.Kind)
	}
	obj := newObj()
	if err := strictUnmarshal(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return obj, nil
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// manifests are the objects of every manifest file, by kind and name.
type manifests struct {
	files        map[string][]string // file -> "Kind/name" of its objects
	namespaces   map[string]*corev1.Namespace
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	services     map[string]*corev1.Service
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	pdbs         map[string]*policyv1.PodDisruptionBudget
	netpols      map[string]*networkingv1.NetworkPolicy
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{files: map[string][]string{}, namespaces: map[string]*corev1.Namespace{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		services: map[string]*corev1.Service{}, deployments: map[string]*appsv1.Deployment{},
		statefulSets: map[string]*appsv1.StatefulSet{}, hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, netpols: map[string]*networkingv1.NetworkPolicy{}}
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f == kustomizationFile {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSeparator.Split(string(b), -1) {
			obj, err := decodeDoc([]byte(doc))
			if err != nil {
				t.Errorf("%s, document %d: %v", f, i+1, err)
				continue
			}
			if obj == nil {
				continue
			}
			var meta metav1.ObjectMeta
			var add func() bool
			switch o := obj.(type) {
			case *corev1.Namespace:
				meta, add = o.ObjectMeta, put(m.namespaces, o.Name, o)
			case *corev1.ConfigMap:
				meta, add = o.ObjectMeta, put(m.configMaps, o.Name, o)
			case *corev1.Secret:
				meta, add = o.ObjectMeta, put(m.secrets, o.Name, o)
			case *corev1.Service:
				meta, add = o.ObjectMeta, put(m.services, o.Name, o)
			case *appsv1.Deployment:
				meta, add = o.ObjectMeta, put(m.deployments, o.Name, o)
			case *appsv1.StatefulSet:
				meta, add = o.ObjectMeta, put(m.statefulSets, o.Name, o)
			case *autoscalingv2.HorizontalPodAutoscaler:
				meta, add = o.ObjectMeta, put(m.hpas, o.Name, o)
			case *policyv1.PodDisruptionBudget:
				meta, add = o.ObjectMeta, put(m.pdbs, o.Name, o)
			case *networkingv1.NetworkPolicy:
				meta, add = o.ObjectMeta, put(m.netpols, o.Name, o)
			}
			kindName := fmt.Sprintf("%T/%s", obj, meta.Name)
			if meta.Name == "" {
				t.Errorf("%s, document %d: %T has no name", f, i+1, obj)
			}
			if !add() {
				t.Errorf("%s: %s defined twice", f, kindName)
			}
			m.files[f] = append(m.files[f], kindName)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

// put returns a func that adds v under k unless k is taken.
func put[V any](into map[string]V, k string, v V) func() bool {
	return func() bool {
		if _, dup := into[k]; dup {
			return false
		}
		into[k] = v
		return true
	}
}

// workload is a Deployment or StatefulSet, reduced to what the checks need.
type workload struct {
	kind     string
	name     string
	replicas *int32
	selector *metav1.LabelSelector
	pod      corev1.PodTemplateSpec
}

func (m *manifests) workloads() []workload {
	var ws []workload
	for _, d := range m.deployments {
		ws = append(ws, workload{"Deployment", d.Name, d.Spec.Replicas, d.Spec.Selector, d.Spec.Template})
	}
	for _, s := range m.statefulSets {
		ws = append(ws, workload{"StatefulSet", s.Name, s.Spec.Replicas, s.Spec.Selector, s.Spec.Template})
	}
	slices.SortFunc(ws, func(a, b workload) int { return strings.Compare(a.name, b.name) })
	return ws
}

func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	bad := []string{
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 2}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x, annotation: {}}\n",
		"apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\nspec: {maxUnavailable: 1, maxUnavailable: 2}\n",
		"apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: x}\n",
	}
	for _, doc := range bad {
		if _, err := decodeDoc([]byte(doc)); err == nil {
			t.Errorf("decoded without error:\n%s", doc)
		}
	}
	if _, err := decodeDoc([]byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: 2}\n")); err != nil {
		t.Errorf("a good document: %v", err)
	}
}

// kustomization is the subset of kustomize's Kustomization these manifests
// use; an unknown field fails the strict decoding.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images"`
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	m := loadManifests(t)
	b, err := os.ReadFile(kustomizationFile)
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := strictUnmarshal(b, &k); err != nil {
		t.Fatalf("%s: %v", kustomizationFile, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("%s: apiVersion %q kind %q", kustomizationFile, k.APIVersion, k.Kind)
	}
	if _, ok := m.namespaces[k.Namespace]; !ok {
		t.Errorf("%s: namespace %q is not among the manifests' Namespaces", kustomizationFile, k.Namespace)
	}
	var want []string
	for f := range m.files {
		if f != secretsExample {
			want = append(want, f)
		}
	}
	got := slices.Clone(k.Resources)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s resources = %v, want every manifest file but %s: %v", kustomizationFile, got, secretsExample, want)
	}
	for _, f := range k.Resources {
		for _, obj := range m.files[f] {
			if strings.HasPrefix(obj, "*v1.Secret/") {
				t.Errorf("%s: %s is applied by kustomize; Secrets belong in %s only", f, obj, secretsExample)
			}
		}
	}
	if len(m.secrets) == 0 || len(m.files[secretsExample]) != len(m.secrets) {
		t.Errorf("%s should hold every Secret (and only Secrets): %v", secretsExample, m.files[secretsExample])
	}
}

// service describes one binary: its environment prefix and config loader.
type service struct {
	prefix string
	// newConfig returns a pointer to the service's defaults.
	newConfig func() config.Validator
	// admin and http return the loaded config's listen addresses ("" for none).
	admin func(config.Validator) string
	http  func(config.Validator) string
}

var services = map[string]service{
	"collector": {"COLLECTOR",
		func() config.Validator { c := ingest.Default(); return &c },
		func(c config.Validator) string { return c.(*ingest.Config).Admin.Listen },
		func(c config.Validator) string { return c.(*ingest.Config).HTTP.Listen }},
	"enricher": {"ENRICHER",
		func() config.Validator { c := pipeline.Default(); return &c },
		func(c config.Validator) string { return c.(*pipeline.Config).Admin.Listen },
		func(config.Validator) string { return "" }},
	"sink": {"SINK",
		func() config.Validator { c := chwriter.Default(); return &c },
		func(c config.Validator) string { return c.(*chwriter.Config).Admin.Listen },
		func(config.Validator) string { return "" }},
}

// envKeys maps every environment variable that overrides a key of the
// config struct type t (as internal/config binds them: each leaf key) to
// its dotted key.
func envKeys(prefix string, t reflect.Type) map[string]string {
	out := map[string]string{}
	var walk func(t reflect.Type, key string)
	walk = func(t reflect.Type, key string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := f.Tag.Get("mapstructure")
			if name == "" || name == "-" {
				continue
			}
			k := key + name
			if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() != "time" {
				walk(f.Type, k+".")
				continue
			}
			out[prefix+"_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = k
		}
	}
	walk(t, "")
	return out
}

// field returns the value of the config field at the dotted key.
func field(v reflect.Value, key string) (reflect.Value, bool) {
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	name, rest, more := strings.Cut(key, ".")
	for i := range v.NumField() {
		if v.Type().Field(i).Tag.Get("mapstructure") == name {
			if more {
				return field(v.Field(i), rest)
			}
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// fileFields lists the non-empty values of every *_file field in v (nested
// structs and lists of structs included), by dotted key.
func fileFields(v reflect.Value, key string, out map[string]string) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			fileFields(v.Elem(), key, out)
		}
	case reflect.Slice:
		for i := range v.Len() {
			fileFields(v.Index(i), fmt.Sprintf("%s[%d]", key, i), out)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			name := f.Tag.Get("mapstructure")
			if name == "" || name == "-" {
				continue
			}
			k := strings.TrimPrefix(key+"."+name, ".")
			if strings.HasSuffix(name, "_file") && f.Type.Kind() == reflect.String {
				if s := v.Field(i).String(); s != "" {
					out[k] = s
				}
				continue
			}
			fileFields(v.Field(i), k, out)
		}
	}
}

// dummySecret is the stand-in for a Secret's key: 64 hex characters, long
// enough for every secret (tokens and pseudonym keys need 32 bytes), valid
// as a bearer token and different for every Secret and key.
func dummySecret(secret, key string) string {
	sum := sha256.Sum256([]byte(secret + "/" + key))
	return hex.EncodeToString(sum[:])
}

// pemStandIns are the test's own PEM files standing in for a Secret's TLS
// keys (Kubernetes' tls.crt and tls.key, and ca.crt), which the services
// parse: a CA, and a certificate and key it signed.
func pemStandIns(t *testing.T) map[string]string {
	t.Helper()
	f := testenv.NewTLSFiles(t)
	out := map[string]string{}
	for key, path := range map[string]string{"ca.crt": f.CA, "tls.crt": f.ServerCert, "tls.key": f.ServerKey} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out[key] = string(b)
	}
	return out
}

// secretStandIn is what the test writes for a Secret's key: a PEM stand-in
// for a TLS key, a dummy value for the rest.
func secretStandIn(pems map[string]string, secret, key string) string {
	if pem, ok := pems[key]; ok {
		return pem
	}
	return dummySecret(secret, key) + "\n"
}

// mountedRoot lays the container's ConfigMap and Secret volumes out under a
// temporary root (Secrets with dummy values, PEM stand-ins for TLS keys),
// and returns the root and a replacer that moves a mounted path under it.
func mountedRoot(t *testing.T, m *manifests, pod corev1.PodSpec, c corev1.Container) (string, *strings.Replacer) {
	t.Helper()
	root := t.TempDir()
	pems := pemStandIns(t)
	var pairs []string
	for _, vm := range c.VolumeMounts {
		pairs = append(pairs, vm.MountPath+"/", filepath.Join(root, vm.MountPath)+"/")
	}
	rewrite := strings.NewReplacer(pairs...)
	for _, vm := range c.VolumeMounts {
		if vm.SubPath != "" || vm.SubPathExpr != "" {
			t.Errorf("volume mount %s: subPath is not supported by this test", vm.Name)
			continue
		}
		if !vm.ReadOnly {
			t.Errorf("volume mount %s: should be readOnly", vm.Name)
		}
		i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
		if i < 0 {
			t.Errorf("volume mount %s: no such volume", vm.Name)
			continue
		}
		vol := pod.Volumes[i]
		files := map[string]string{} // path in the mount -> content
		var items []corev1.KeyToPath
		switch {
		case vol.ConfigMap != nil:
			cm, ok := m.configMaps[vol.ConfigMap.Name]
			if !ok {
				t.Errorf("volume %s: ConfigMap %q is not in the manifests", vol.Name, vol.ConfigMap.Name)
				continue
			}
			for k, v := range cm.Data {
				files[k] = rewrite.Replace(v)
			}
			items = vol.ConfigMap.Items
		case vol.Secret != nil:
			s, ok := m.secrets[vol.Secret.SecretName]
			if !ok {
				t.Errorf("volume %s: Secret %q is not in the manifests (%s)", vol.Name, vol.Secret.SecretName, secretsExample)
				continue
			}
			for k := range s.StringData {
				files[k] = secretStandIn(pems, s.Name, k)
			}
			for k := range s.Data {
				files[k] = secretStandIn(pems, s.Name, k)
			}
			items = vol.Secret.Items
		default:
			t.Errorf("volume %s: only ConfigMap and Secret volumes are expected", vol.Name)
			continue
		}
		if items != nil {
			picked := map[string]string{}
			for _, it := range items {
				content, ok := files[it.Key]
				if !ok {
					t.Errorf("volume %s: item key %q is not in its ConfigMap or Secret", vol.Name, it.Key)
				}
				picked[it.Path] = content
			}
			files = picked
		}
		for p, content := range files {
			full := filepath.Join(root, vm.MountPath, p)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root, rewrite
}

// tlsOn fails the test for every TLS block of the loaded config v that is
// off: a client's (config.TLS) needs enabled and a CA file, a server's
// (config.ServerTLS) a certificate and a client CA. It returns the blocks
// seen.
func tlsOn(t *testing.T, v reflect.Value, key string) int {
	t.Helper()
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	switch tls := v.Interface().(type) {
	case config.TLS:
		if !tls.Enabled || tls.CAFile == "" {
			t.Errorf("%s: %+v, want TLS on with a CA file", key, tls)
		}
		return 1
	case config.ServerTLS:
		if !tls.Enabled() || tls.ClientCAFile == "" {
			t.Errorf("%s: %+v, want TLS on with client certificates (client_ca_file)", key, tls)
		}
		return 1
	}
	if v.Kind() != reflect.Struct {
		return 0
	}
	n := 0
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("mapstructure")
		if name == "" || name == "-" || !v.Type().Field(i).IsExported() {
			continue
		}
		n += tlsOn(t, v.Field(i), strings.TrimPrefix(key+"."+name, "."))
	}
	return n
}

// envValue resolves a container's variable: a literal or a ConfigMap key.
func envValue(t *testing.T, m *manifests, e corev1.EnvVar) string {
	t.Helper()
	if e.ValueFrom == nil {
		return e.Value
	}
	ref := e.ValueFrom.ConfigMapKeyRef
	if ref == nil {
		t.Errorf("env %s: only configMapKeyRef is expected (secrets come as files)", e.Name)
		return ""
	}
	if ref.Optional != nil && *ref.Optional {
		t.Errorf("env %s: the ConfigMap key should not be optional", e.Name)
	}
	cm, ok := m.configMaps[ref.Name]
	if !ok {
		t.Errorf("env %s: ConfigMap %q is not in the manifests", e.Name, ref.Name)
		return ""
	}
	v, ok := cm.Data[ref.Key]
	if !ok {
		t.Errorf("env %s: ConfigMap %q has no key %q", e.Name, ref.Name, ref.Key)
	}
	return v
}

// configPath returns the --config argument of a command line.
func configPath(args []string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			return v
		}
		if v, ok := strings.CutPrefix(a, "-config="); ok {
			return v
		}
		if (a == "--config" || a == "-config") && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func listenPort(t *testing.T, key, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Fatalf("%s %q: not host:port", key, addr)
	}
	return int32(n)
}

// portOf resolves a probe's or Service's target port against the container.
func portOf(c corev1.Container, p intstr.IntOrString) (int32, bool) {
	if p.Type == intstr.Int {
		return p.IntVal, slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.ContainerPort == p.IntVal })
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func namedPort(c corev1.Container, name string) int32 {
	for _, cp := range c.Ports {
		if cp.Name == name {
			return cp.ContainerPort
		}
	}
	return 0
}

func checkProbe(t *testing.T, c corev1.Container, what string, p *corev1.Probe, path string, port int32) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: want an httpGet probe on %s", what, path)
		return
	}
	if p.HTTPGet.Path != path {
		t.Errorf("%s: path %q, want %q", what, p.HTTPGet.Path, path)
	}
	if got, ok := portOf(c, p.HTTPGet.Port); !ok || got != port {
		t.Errorf("%s: port %s is %d, want the admin port %d", what, p.HTTPGet.Port.String(), got, port)
	}
}

func checkResources(t *testing.T, r corev1.ResourceRequirements) {
	t.Helper()
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, ok := r.Requests[name]
		if !ok || req.Sign() <= 0 {
			t.Errorf("resources: no %s request", name)
			continue
		}
		lim, ok := r.Limits[name]
		if !ok {
			t.Errorf("resources: no %s limit", name)
			continue
		}
		if lim.Cmp(req) < 0 {
			t.Errorf("resources: %s limit %s below its request %s", name, lim.String(), req.String())
		}
	}
}

func checkSecurity(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	ps := pod.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
		t.Error("pod securityContext: want runAsNonRoot: true")
	}
	// The image's USER is "nonroot", a name: the kubelet can verify
	// runAsNonRoot only against a numeric runAsUser.
	if ps == nil || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
		t.Error("pod securityContext: want a numeric, non-zero runAsUser")
	}
	if ps == nil || ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod securityContext: want seccompProfile RuntimeDefault")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("pod: the services use no Kubernetes API: want automountServiceAccountToken: false")
	}
	cs := c.SecurityContext
	switch {
	case cs == nil:
		t.Error("container: no securityContext")
	default:
		if cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation {
			t.Error("container securityContext: want allowPrivilegeEscalation: false")
		}
		if cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem {
			t.Error("container securityContext: want readOnlyRootFilesystem: true")
		}
		if cs.Capabilities == nil || !slices.Contains(cs.Capabilities.Drop, "ALL") {
			t.Error("container securityContext: want capabilities drop [ALL]")
		}
		if cs.Privileged != nil && *cs.Privileged {
			t.Error("container securityContext: privileged")
		}
	}
}

// adminServices returns the Services that select the workload's pods and
// carry Prometheus annotations.
func (m *manifests) adminServices(w workload) []*corev1.Service {
	var out []*corev1.Service
	for _, s := range m.services {
		if s.Annotations["prometheus.io/scrape"] == "true" && len(s.Spec.Selector) > 0 &&
			labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.pod.Labels)) {
			out = append(out, s)
		}
	}
	return out
}

func TestWorkloads(t *testing.T) {
	m := loadManifests(t)
	seen := map[string]int{} // binary -> workloads
	for _, w := range m.workloads() {
		t.Run(w.kind+"/"+w.name, func(t *testing.T) {
			sel, err := metav1.LabelSelectorAsSelector(w.selector)
			if err != nil || sel.Empty() || !sel.Matches(labels.Set(w.pod.Labels)) {
				t.Errorf("selector %v does not match the pod template's labels %v (%v)", w.selector, w.pod.Labels, err)
			}
			pod := w.pod.Spec
			if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
				t.Fatalf("want one container, got %d (and %d init)", len(pod.Containers), len(pod.InitContainers))
			}
			c := pod.Containers[0]
			if c.Image != image {
				t.Errorf("image %q, want %q", c.Image, image)
			}
			cmd := append(slices.Clone(c.Command), c.Args...)
			if len(cmd) == 0 {
				t.Fatal("no command: the image has three binaries and no entrypoint")
			}
			svc, ok := services[cmd[0]]
			if !ok {
				t.Fatalf("command %q: not collector, enricher or sink", cmd[0])
			}
			seen[cmd[0]]++
			checkSecurity(t, pod, c)
			checkResources(t, c.Resources)

			root, rewrite := mountedRoot(t, m, pod, c)
			cfgPath := configPath(cmd[1:])
			if !filepath.IsAbs(cfgPath) || !strings.HasPrefix(cfgPath, "/etc/consentflow/") {
				t.Fatalf("--config %q: want a file of the ConfigMap mounted at /etc/consentflow", cfgPath)
			}

			// Every variable overrides a real key, and the loader takes them
			// all with the mounted config and Secret files.
			configtest.ClearEnv(t, svc.prefix)
			cfg := svc.newConfig()
			keys := envKeys(svc.prefix, reflect.TypeOf(cfg).Elem())
			set := map[string]string{} // key -> value as set
			for _, e := range c.Env {
				key, ok := keys[e.Name]
				if !ok {
					t.Errorf("env %s: not a config override of %s (want %s_<KEY> of a key in its config)", e.Name, cmd[0], svc.prefix)
					continue
				}
				if _, dup := set[key]; dup {
					t.Errorf("env %s: set twice", e.Name)
				}
				v := rewrite.Replace(envValue(t, m, e))
				set[key] = v
				t.Setenv(e.Name, v)
			}
			if len(c.EnvFrom) > 0 {
				t.Error("envFrom: name each variable, so each is checked")
			}
			if err := config.Load(rewrite.Replace(cfgPath), svc.prefix, cfg); err != nil {
				t.Fatalf("the service's loader refuses the mounted config with this environment: %v", err)
			}
			for key, want := range set {
				f, ok := field(reflect.ValueOf(cfg), key)
				if !ok {
					t.Errorf("%s: no such field", key)
					continue
				}
				var got string
				switch {
				case f.Type() == reflect.TypeOf(time.Duration(0)):
					d, err := time.ParseDuration(want)
					if err != nil || time.Duration(f.Int()) != d {
						t.Errorf("%s = %v after loading, want %s", key, time.Duration(f.Int()), want)
					}
					continue
				case f.Kind() == reflect.String:
					got = f.String()
				case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
					got = strings.Join(f.Interface().([]string), ",")
				default:
					continue
				}
				if got != want {
					t.Errorf("%s = %q after loading, want %q: the variable did not take effect", key, got, want)
				}
			}
			// Secret files are read from mounted Secrets, never the image.
			files := map[string]string{}
			fileFields(reflect.ValueOf(cfg), "", files)
			for key, path := range files {
				if !strings.HasPrefix(path, root+"/var/run/secrets/") {
					t.Errorf("%s = %q: want a file of a mounted Secret", key, path)
				}
			}

			// TLS is on: to Kafka and ClickHouse, and on the privacy API
			// with client certificates.
			if n := tlsOn(t, reflect.ValueOf(cfg), ""); n == 0 {
				t.Error("the loaded config has no TLS block")
			}

			admin := listenPort(t, "admin.listen", svc.admin(cfg))
			if got := namedPort(c, "admin"); got != admin {
				t.Errorf("container port \"admin\" is %d, want admin.listen's %d", got, admin)
			}
			if h := svc.http(cfg); h != "" {
				if got, want := namedPort(c, "http"), listenPort(t, "http.listen", h); got != want {
					t.Errorf("container port \"http\" is %d, want http.listen's %d", got, want)
				}
			}
			checkProbe(t, c, "readinessProbe", c.ReadinessProbe, "/readyz", admin)
			checkProbe(t, c, "livenessProbe", c.LivenessProbe, "/healthz", admin)

			// Prometheus finds the admin port through an annotated Service.
			scraped := m.adminServices(w)
			if len(scraped) != 1 {
				t.Errorf("want one Service with prometheus.io/scrape selecting these pods, got %d", len(scraped))
			}
			for _, s := range scraped {
				if s.Annotations["prometheus.io/port"] != strconv.Itoa(int(admin)) || s.Annotations["prometheus.io/path"] != "/metrics" {
					t.Errorf("Service %s: prometheus.io/port %q path %q, want %d and /metrics", s.Name,
						s.Annotations["prometheus.io/port"], s.Annotations["prometheus.io/path"], admin)
				}
				if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool {
					got, ok := portOf(c, p.TargetPort)
					return ok && got == admin
				}) {
					t.Errorf("Service %s: no port targets the admin port %d", s.Name, admin)
				}
			}

			if cmd[0] == "enricher" {
				// transactional_id: unique per pod, stable across restarts.
				if w.kind != "StatefulSet" {
					t.Errorf("the enricher runs as a %s: its default transactional_id (<group_id>-<hostname>) is stable only in a StatefulSet", w.kind)
				}
				if _, fixed := set["transactional_id"]; fixed && (w.replicas == nil || *w.replicas > 1) {
					t.Error("ENRICHER_TRANSACTIONAL_ID is one value for every replica: IDs must be unique per instance")
				}
				if s := m.statefulSets[w.name]; s != nil {
					gov, ok := m.services[s.Spec.ServiceName]
					if !ok || gov.Spec.ClusterIP != corev1.ClusterIPNone {
						t.Errorf("serviceName %q: want a headless Service in the manifests", s.Spec.ServiceName)
					}
				}
			}
			if cmd[0] == "collector" {
				// The privacy API on a port of its own, reachable from other
				// pods (NetworkPolicy decides which), never in plaintext.
				p := cfg.(*ingest.Config).Privacy
				if got, want := namedPort(c, "privacy"), listenPort(t, "privacy.listen", p.Listen); got != want || got == admin {
					t.Errorf("container port \"privacy\" is %d, want privacy.listen's %d, apart from the admin port %d", got, want, admin)
				}
				if config.IsLoopback(p.Listen) || p.AllowPlaintext {
					t.Errorf("privacy.listen %q (allow_plaintext %v): want the pod's address, over TLS", p.Listen, p.AllowPlaintext)
				}
				if w.kind != "Deployment" || w.replicas != nil {
					t.Errorf("the collector should be a Deployment without replicas (the HPA sets them, and an apply would reset them); got a %s with replicas set: %v", w.kind, w.replicas != nil)
				}
			}
		})
	}
	for name := range services {
		if seen[name] == 0 {
			t.Errorf("no workload runs %s", name)
		}
	}
	if seen["sink"] != 2 {
		t.Errorf("want two sinks (cn and intl), got %d", seen["sink"])
	}
}

func TestConfigMapsMatchShippedConfigs(t *testing.T) {
	m := loadManifests(t)
	parse := func(what string, b []byte) map[string]any {
		var v map[string]any
		if err := yaml.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	// collector.yaml's sources and privacy.operators are lists of structs,
	// which no environment variable overrides: the copy names Secret files.
	fileOnly := map[string][]string{"collector.yaml": {"sources", "privacy.operators"}}
	// The privacy API listens on the pod's address in the cluster, on
	// loopback as shipped (TestWorkloads checks the port and TLS).
	deployed := map[string][]string{"collector.yaml": {"privacy.listen"}}
	checked := 0
	for _, cm := range m.configMaps {
		for file, text := range cm.Data {
			if !strings.HasSuffix(file, ".yaml") {
				continue
			}
			shippedText, err := os.ReadFile(filepath.Join(shippedConfigs, file))
			if err != nil {
				t.Errorf("ConfigMap %s: %s is not a shipped config: %v", cm.Name, file, err)
				continue
			}
			got, want := parse(cm.Name+"/"+file, []byte(text)), parse(file, shippedText)
			if file == "catalogue.yaml" { // not a service's config: the same, whole
				if !reflect.DeepEqual(got, want) {
					t.Errorf("ConfigMap %s/%s differs from configs/%s", cm.Name, file, file)
				}
				continue
			}
			for _, key := range append(slices.Clone(fileOnly[file]), deployed[file]...) {
				for _, v := range []map[string]any{got, want} {
					parent, leaf := v, key
					if a, b, ok := strings.Cut(key, "."); ok {
						parent, _ = v[a].(map[string]any)
						leaf = b
					}
					delete(parent, leaf)
				}
			}
			if n := checkReplication(t, cm.Name+"/"+file, got, want); n == 0 {
				t.Errorf("ConfigMap %s/%s: no topic found", cm.Name, file)
			}
			if n := checkTLS(t, cm.Name+"/"+file, "", got, want); n == 0 {
				t.Errorf("ConfigMap %s/%s: no tls block found", cm.Name, file)
			}
			if !reflect.DeepEqual(got, want) {
				g, _ := json.MarshalIndent(got, "", " ")
				w, _ := json.MarshalIndent(want, "", " ")
				t.Errorf("ConfigMap %s/%s differs from configs/%s (outside %v):\n%s\nwant\n%s", cm.Name, file, file, fileOnly[file], g, w)
			}
			checked++
		}
	}
	if checked != 4 {
		t.Errorf("checked %d configs, want 4 (collector, enricher, sink, sink-intl)", checked)
	}
}

// checkTLS finds every tls block in the ConfigMap's config and the shipped
// one, checks the ConfigMap's is on (a client's tls.enabled with a CA file;
// a server's cert_file, key_file and client_ca_file) and that none of the
// shipped file's is missing, and removes them from both, so the rest can be
// compared. It returns the blocks seen.
func checkTLS(t *testing.T, what, key string, got, want map[string]any) int {
	t.Helper()
	n := 0
	if g, ok := got["tls"].(map[string]any); ok {
		n++
		k := strings.TrimPrefix(key+".tls", ".")
		if _, client := g["enabled"]; client {
			if g["enabled"] != true || g["ca_file"] == nil || g["ca_file"] == "" {
				t.Errorf("%s: %s = %v, want enabled: true with a ca_file", what, k, g)
			}
		} else if g["cert_file"] == nil || g["key_file"] == nil || g["client_ca_file"] == nil {
			t.Errorf("%s: %s = %v, want a server's cert_file, key_file and client_ca_file", what, k, g)
		}
	} else if _, shipped := want["tls"]; shipped {
		t.Errorf("%s: %s: the shipped config has a tls block here, the ConfigMap none", what, strings.TrimPrefix(key+".tls", "."))
	}
	for _, m := range []map[string]any{got, want} {
		if m != nil {
			delete(m, "tls")
		}
	}
	for k, v := range got {
		if sub, ok := v.(map[string]any); ok {
			wsub, _ := want[k].(map[string]any)
			n += checkTLS(t, what, strings.TrimPrefix(key+"."+k, "."), sub, wsub)
		}
	}
	return n
}

// checkReplication finds every topic spec (a map with replication_factor)
// in the ConfigMap's config, checks it asks for production replication (3,
// min ISR 2), and removes both keys there and in the shipped config's spec
// at the same place, so the rest can be compared. It returns the topics seen.
func checkReplication(t *testing.T, what string, got, want map[string]any) int {
	t.Helper()
	n := 0
	if _, ok := got["replication_factor"]; ok {
		n++
		if got["replication_factor"] != float64(3) || got["min_insync_replicas"] != float64(2) {
			t.Errorf("%s: a topic has replication_factor %v and min_insync_replicas %v, want 3 and 2",
				what, got["replication_factor"], got["min_insync_replicas"])
		}
		for _, m := range []map[string]any{got, want} {
			if m != nil {
				delete(m, "replication_factor")
				delete(m, "min_insync_replicas")
			}
		}
	}
	for k, v := range got {
		if sub, ok := v.(map[string]any); ok {
			wsub, _ := want[k].(map[string]any)
			n += checkReplication(t, what, sub, wsub)
		}
	}
	return n
}

func TestCollectorHPA(t *testing.T) {
	m := loadManifests(t)
	if len(m.hpas) != 1 {
		t.Fatalf("want one HorizontalPodAutoscaler, got %d", len(m.hpas))
	}
	for _, h := range m.hpas {
		ref := h.Spec.ScaleTargetRef
		d, ok := m.deployments[ref.Name]
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || !ok {
			t.Fatalf("HPA %s targets %s %s %q: want the collector's apps/v1 Deployment", h.Name, ref.APIVersion, ref.Kind, ref.Name)
		}
		c := d.Spec.Template.Spec.Containers[0]
		if len(c.Command) == 0 || c.Command[0] != "collector" {
			t.Errorf("HPA %s targets Deployment %s, which runs %v, not the collector", h.Name, d.Name, c.Command)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
			t.Errorf("HPA %s: minReplicas %v maxReplicas %d: want at least 2, and max >= min", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		cpu := false
		for _, mt := range h.Spec.Metrics {
			if mt.Type == autoscalingv2.ResourceMetricSourceType && mt.Resource != nil && mt.Resource.Name == corev1.ResourceCPU &&
				mt.Resource.Target.Type == autoscalingv2.UtilizationMetricType && mt.Resource.Target.AverageUtilization != nil {
				cpu = true
			}
		}
		if !cpu {
			t.Errorf("HPA %s: want a CPU utilization metric", h.Name)
		}
		// Utilization is a share of the request.
		if q, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok || q.Cmp(resource.MustParse("0")) <= 0 {
			t.Errorf("HPA %s: its target has no CPU request to measure utilization against", h.Name)
		}
	}
}

func TestPodDisruptionBudgets(t *testing.T) {
	m := loadManifests(t)
	covered := map[string]int{}
	for _, p := range m.pdbs {
		if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
			t.Errorf("PDB %s: set one of minAvailable and maxUnavailable", p.Name)
		}
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || sel.Empty() {
			t.Errorf("PDB %s: selector %v: %v", p.Name, p.Spec.Selector, err)
			continue
		}
		var matched []string
		for _, w := range m.workloads() {
			if sel.Matches(labels.Set(w.pod.Labels)) {
				matched = append(matched, w.name)
				covered[w.name]++
			}
		}
		if len(matched) != 1 {
			t.Errorf("PDB %s selects the pods of %v: want exactly one workload", p.Name, matched)
		}
	}
	for _, w := range m.workloads() {
		if covered[w.name] != 1 {
			t.Errorf("%s %s: %d PodDisruptionBudgets, want 1", w.kind, w.name, covered[w.name])
		}
	}
}

func TestServicesSelectPods(t *testing.T) {
	m := loadManifests(t)
	for _, s := range m.services {
		if len(s.Spec.Selector) == 0 {
			t.Errorf("Service %s: no selector", s.Name)
			continue
		}
		sel := labels.SelectorFromSet(s.Spec.Selector)
		var matched []workload
		for _, w := range m.workloads() {
			if sel.Matches(labels.Set(w.pod.Labels)) {
				matched = append(matched, w)
			}
		}
		if len(matched) != 1 {
			t.Errorf("Service %s selects the pods of %d workloads, want 1", s.Name, len(matched))
			continue
		}
		for _, p := range s.Spec.Ports {
			if _, ok := portOf(matched[0].pod.Spec.Containers[0], p.TargetPort); !ok {
				t.Errorf("Service %s port %s: targetPort %s is not a port of the pods", s.Name, p.Name, p.TargetPort.String())
			}
		}
	}
	if s, ok := m.services["collector"]; !ok {
		t.Error("no Service collector for the collector's HTTP port")
	} else if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.TargetPort.String() == "http" }) {
		t.Error("Service collector: no port targets the container port http")
	}
}

// namespace is where kustomization.yaml puts every object.
const namespace = "consentflow"

// peer is a source of traffic to a pod: a pod (with its labels, in a
// namespace with its labels) or, with no pod labels, an address outside
// the cluster.
type peer struct {
	name            string
	namespace       string
	namespaceLabels labels.Set
	podLabels       labels.Set // nil: not a pod
	ip              string
}

// Peers the checks try against every port of every pod.
var (
	prometheus    = peer{"this namespace's Prometheus", namespace, labels.Set{"kubernetes.io/metadata.name": namespace}, labels.Set{"app.kubernetes.io/name": "prometheus"}, "10.244.1.10"}
	privacyClient = peer{"a privacy client", namespace, labels.Set{"kubernetes.io/metadata.name": namespace}, labels.Set{"consentflow.io/privacy-client": "true"}, "10.244.1.11"}
	otherPod      = peer{"another pod of the namespace", namespace, labels.Set{"kubernetes.io/metadata.name": namespace}, labels.Set{"app.kubernetes.io/name": "debug"}, "10.244.1.12"}
	// A pod of another namespace with a Prometheus's or a privacy
	// client's labels: only the namespace's own are meant.
	foreignPod = peer{"a pod of another namespace", "tenant", labels.Set{"kubernetes.io/metadata.name": "tenant"},
		labels.Set{"app.kubernetes.io/name": "prometheus", "consentflow.io/privacy-client": "true"}, "10.244.2.20"}
	outside = peer{"an address outside the cluster", "", nil, nil, "203.0.113.7"}
	peers   = []peer{prometheus, privacyClient, otherPod, foreignPod, outside}
)

// admits reports whether the policies let p reach port of a pod with
// podLabels in namespace, by the NetworkPolicy API's rules: a pod no
// policy selects for ingress takes any traffic; one that is selected takes
// what any of those policies' rules admits, port and source both.
func admits(t *testing.T, pols map[string]*networkingv1.NetworkPolicy, podLabels labels.Set, port corev1.ContainerPort, p peer) bool {
	t.Helper()
	isolated := false
	for _, pol := range pols {
		sel, err := metav1.LabelSelectorAsSelector(&pol.Spec.PodSelector)
		if err != nil {
			t.Fatalf("NetworkPolicy %s: podSelector: %v", pol.Name, err)
		}
		if !sel.Matches(podLabels) {
			continue
		}
		ingress := len(pol.Spec.PolicyTypes) == 0 // Ingress is the default
		for _, typ := range pol.Spec.PolicyTypes {
			ingress = ingress || typ == networkingv1.PolicyTypeIngress
		}
		if !ingress {
			continue
		}
		isolated = true
		for _, rule := range pol.Spec.Ingress {
			if portMatches(rule.Ports, port) && fromMatches(t, pol.Name, rule.From, p) {
				return true
			}
		}
	}
	return !isolated
}

func portMatches(ports []networkingv1.NetworkPolicyPort, port corev1.ContainerPort) bool {
	if len(ports) == 0 {
		return true
	}
	for _, np := range ports {
		proto := corev1.ProtocolTCP
		if np.Protocol != nil {
			proto = *np.Protocol
		}
		cproto := port.Protocol
		if cproto == "" {
			cproto = corev1.ProtocolTCP
		}
		switch {
		case proto != cproto:
		case np.Port == nil:
			return true
		case np.Port.Type == intstr.String && np.Port.StrVal == port.Name:
			return true
		case np.Port.Type == intstr.Int && np.EndPort != nil && np.Port.IntVal <= port.ContainerPort && port.ContainerPort <= *np.EndPort:
			return true
		case np.Port.Type == intstr.Int && np.Port.IntVal == port.ContainerPort:
			return true
		}
	}
	return false
}

func fromMatches(t *testing.T, policy string, from []networkingv1.NetworkPolicyPeer, p peer) bool {
	t.Helper()
	if len(from) == 0 {
		return true
	}
	for _, f := range from {
		if f.IPBlock != nil {
			_, cidr, err := net.ParseCIDR(f.IPBlock.CIDR)
			if err != nil {
				t.Fatalf("NetworkPolicy %s: ipBlock %q: %v", policy, f.IPBlock.CIDR, err)
			}
			ip, excepted := net.ParseIP(p.ip), false
			for _, e := range f.IPBlock.Except {
				if _, ex, err := net.ParseCIDR(e); err == nil && ex.Contains(ip) {
					excepted = true
				}
			}
			if cidr.Contains(ip) && !excepted {
				return true
			}
			continue
		}
		if p.podLabels == nil {
			continue // pod and namespace selectors select pods only
		}
		nsOK := p.namespace == namespace
		if f.NamespaceSelector != nil {
			sel, err := metav1.LabelSelectorAsSelector(f.NamespaceSelector)
			if err != nil {
				t.Fatalf("NetworkPolicy %s: namespaceSelector: %v", policy, err)
			}
			nsOK = sel.Matches(p.namespaceLabels)
		}
		podOK := true
		if f.PodSelector != nil {
			sel, err := metav1.LabelSelectorAsSelector(f.PodSelector)
			if err != nil {
				t.Fatalf("NetworkPolicy %s: podSelector: %v", policy, err)
			}
			podOK = sel.Matches(p.podLabels)
		}
		if nsOK && podOK {
			return true
		}
	}
	return false
}

// TestNetworkPolicies checks who reaches each port of each pod: the admin
// ports only this namespace's Prometheus, the privacy API only a pod
// labelled as a privacy client, the collector's public API anyone, and
// anything else (another port, another pod, another namespace, outside)
// nothing: ingress is denied by default.
func TestNetworkPolicies(t *testing.T) {
	m := loadManifests(t)
	for _, pol := range m.netpols {
		if pol.Namespace != "" && pol.Namespace != namespace {
			t.Errorf("NetworkPolicy %s: namespace %q, want kustomization's %s", pol.Name, pol.Namespace, namespace)
		}
	}
	// What each named port admits; any other port admits no one.
	want := map[string][]peer{
		"admin":   {prometheus},
		"privacy": {privacyClient},
		"http":    peers,
	}
	for _, w := range m.workloads() {
		podLabels := labels.Set(w.pod.Labels)
		c := w.pod.Spec.Containers[0]
		// A port no container declares stands for any other.
		ports := append(slices.Clone(c.Ports), corev1.ContainerPort{Name: "undeclared", ContainerPort: 5555})
		for _, port := range ports {
			for _, p := range peers {
				got, wanted := admits(t, m.netpols, podLabels, port, p), slices.ContainsFunc(want[port.Name], func(q peer) bool { return q.name == p.name })
				if got != wanted {
					t.Errorf("%s %s, port %s (%d): %s is admitted: %v, want %v", w.kind, w.name, port.Name, port.ContainerPort, p.name, got, wanted)
				}
			}
		}
	}
	// A pod added to the namespace later, whatever its labels, is denied
	// too: ingress is denied by default, not only to today's workloads.
	if admits(t, m.netpols, labels.Set{"app.kubernetes.io/name": "future"}, corev1.ContainerPort{Name: "http", ContainerPort: 8080}, otherPod) {
		t.Error("a new pod of the namespace takes any ingress: want a default-deny NetworkPolicy selecting every pod")
	}
	if d, ok := m.deployments["collector"]; !ok || namedPort(d.Spec.Template.Spec.Containers[0], "privacy") == 0 {
		t.Error("the collector has no container port \"privacy\" for the NetworkPolicies to guard")
	}
}
