// A stand-in for Jenkins' declarative pipeline runtime, enough to run our
// Jenkinsfile's sh steps for real and in order (make test-live's jenkins
// phase; Jenkins itself cannot run on our machines). Runs on Debian's
// groovy 2.4:
//
//   groovy deploy/live/jenkins/stub.groovy Jenkinsfile
//
// The job's side comes from the environment:
//   WORKSPACE            the checkout the steps run in (required)
//   BRANCH_NAME          the multibranch branch (`when { branch ... }`)
//   JENKINS_PARAMS       build parameters, NAME=value,NAME=value
//   JENKINS_CREDENTIALS  a properties file standing in for the credentials
//                        store: ID.username / ID.password for
//                        usernamePassword, ID.file for file credentials,
//                        ID.secret for secret text
//   JENKINS_SKIP_STAGES  comma-separated stages not to run (reported)
// Unknown steps and sections fail the run, so a Jenkinsfile change that
// the stub cannot honour is noticed rather than ignored.

class StageSkipped extends RuntimeException {}

class Stub {
    Map<String, String> env = new LinkedHashMap<>()
    Map<String, Object> params = [:]
    Map<String, String> paramOverrides = [:]
    Properties creds = new Properties()
    Set<String> skipStages = [] as Set
    File workspace
    List<String> log = []
    boolean failed = false
    // Epoch milliseconds by which the running sh steps must end (options {
    // timeout(...) } of the pipeline and the stage), 0 for none.
    long pipelineDeadline = 0
    long deadline = 0

    Stub() {
        env.putAll(System.getenv())
        // Jenkins sets BUILD_TAG for every build; deploy/jenkins/ci-services.sh
        // names its containers by it, so `stop` finds what `start` ran.
        env.putIfAbsent('BUILD_TAG', "jenkins-stub-${System.currentTimeMillis()}".toString())
        workspace = new File(required('WORKSPACE'))
        (System.getenv('JENKINS_PARAMS') ?: '').split(',').findAll { it }.each {
            def (k, v) = it.split('=', 2) as List
            paramOverrides[k] = v
        }
        def cf = System.getenv('JENKINS_CREDENTIALS')
        if (cf) { new File(cf).withInputStream { creds.load(it) } }
        (System.getenv('JENKINS_SKIP_STAGES') ?: '').split(',').findAll { it }.each { skipStages << it.trim() }
    }

    static String required(String name) {
        def v = System.getenv(name)
        if (!v) { throw new IllegalStateException("stub: set ${name}") }
        return v
    }

    // timestamps() is honoured for the stub's own lines: the time of day.
    void say(String msg) { println "[stub ${new Date().format('HH:mm:ss')}] ${msg}"; System.out.flush() }

    // Runs a closure with the given delegate only: names it does not know
    // are errors, not Groovy globals.
    def with(Object delegate, Closure c) {
        def cl = c.rehydrate(delegate, this, this)
        cl.resolveStrategy = Closure.DELEGATE_ONLY
        return cl.call()
    }

    void credential(String id, String key, Map<String, String> into, String variable) {
        def v = creds.getProperty("${id}.${key}")
        if (v == null) { throw new IllegalStateException("stub: no credential ${id}.${key} in JENKINS_CREDENTIALS") }
        into[variable] = v
    }

    int sh(String script, Map<String, String> extraEnv) {
        def f = File.createTempFile('stub-sh', '.sh')
        f.text = script
        // Jenkins runs a step without #! as `sh -xe`.
        def cmd = script.startsWith('#!') ? ['sh', '-c', "chmod +x '${f}' && exec '${f}'".toString()] : ['sh', '-xe', f.path]
        // A timeout kills the step's whole process group, as Jenkins does.
        if (deadline > 0) {
            long secs = Math.max(1L, (long) ((deadline - System.currentTimeMillis()) / 1000))
            cmd = ['timeout', '-k', '10', "${secs}s".toString()] + cmd
        }
        def pb = new ProcessBuilder(cmd).directory(workspace).inheritIO()
        pb.environment().clear()
        pb.environment().putAll(env)
        pb.environment().putAll(extraEnv)
        int rc = pb.start().waitFor()
        f.delete()
        if (deadline > 0 && rc == 124 && System.currentTimeMillis() >= deadline) {
            throw new RuntimeException('timed out (options { timeout })')
        }
        return rc
    }
}

// Each DSL level is a delegate class: only the keywords of that level exist.
class Pipeline {
    Stub s
    def agent(Object a) { s.say("agent ${a}") }
    def getAny() { 'any' }
    def options(Closure c) {
        def o = new Options(s: s)
        s.with(o, c)
        if (o.seconds) { s.pipelineDeadline = s.deadline = System.currentTimeMillis() + o.seconds * 1000 }
    }
    def parameters(Closure c) { s.with(new Parameters(s: s), c) }
    def environment(Closure c) { s.with(new Environment(s: s), c) }
    def stages(Closure c) { s.with(new Stages(s: s), c) }
    def post(Closure c) { s.with(new Post(s: s, failed: s.failed), c) }
}

class Options {
    Stub s
    long seconds = 0
    def timeout(Map m) {
        def perUnit = [SECONDS: 1, MINUTES: 60, HOURS: 3600][m.unit ?: 'MINUTES']
        if (perUnit == null) { throw new IllegalArgumentException("stub: timeout unit ${m.unit}") }
        seconds = (m.time as long) * perUnit
    }
    def timestamps() {}
    def disableConcurrentBuilds() {}
    def logRotator(Map m) { m }
    def buildDiscarder(Object o) {}
}

class Parameters {
    Stub s
    def param(Map m, Object dflt) {
        def v = s.paramOverrides.containsKey(m.name) ? s.paramOverrides[m.name] : dflt
        if (dflt instanceof Boolean) { v = v.toString().toBoolean() }
        s.params[m.name] = v
        // Jenkins also exports every parameter to the steps' environment.
        s.env[m.name] = v.toString()
        return v
    }
    def booleanParam(Map m) { param(m, m.defaultValue as Boolean) }
    def string(Map m) { param(m, m.defaultValue) }
    def choice(Map m) {
        def v = param(m, m.choices[0])
        if (!(v in m.choices)) { throw new IllegalArgumentException("stub: ${m.name}=${v} is not one of ${m.choices}") }
    }
}

class Environment {
    Stub s
    void setProperty(String name, Object value) { s.env[name] = value.toString() }
    def getProperty(String name) {
        if (name == 'params') { return s.params }
        if (!s.env.containsKey(name)) { throw new MissingPropertyException("stub: environment ${name} is not set", name, Environment) }
        return s.env[name]
    }
}

class Stages {
    Stub s
    def stage(String name, Closure c) {
        if (s.failed) { s.say("stage '${name}' skipped: an earlier stage failed"); s.log << "${name}: not run"; return }
        if (name in s.skipStages) { s.say("stage '${name}' skipped (JENKINS_SKIP_STAGES)"); s.log << "${name}: skipped by request"; return }
        def st = new Stage(s: s, name: name)
        s.with(st, c)
        if (st.when != null) {
            def w = new When(s: s)
            s.with(w, st.when)
            if (!w.ok) { s.say("stage '${name}' skipped: ${w.why}"); s.log << "${name}: skipped (when)"; return }
        }
        s.say("stage '${name}'")
        if (st.seconds) {
            long d = System.currentTimeMillis() + st.seconds * 1000
            s.deadline = s.pipelineDeadline > 0 ? Math.min(d, s.pipelineDeadline) : d
        }
        long start = System.currentTimeMillis()
        try {
            if (st.steps != null) { s.with(new Steps(s: s, extraEnv: [:]), st.steps) }
            s.log << "${name}: ok (${(System.currentTimeMillis() - start).intdiv(1000)} s)"
        } catch (Exception e) {
            s.failed = true
            s.say("stage '${name}' FAILED: ${e.message}")
            s.log << "${name}: FAILED (${(System.currentTimeMillis() - start).intdiv(1000)} s)"
        }
        s.deadline = s.pipelineDeadline
        if (st.post != null) { s.with(new Post(s: s, failed: s.failed), st.post) }
    }
}

class Stage {
    Stub s
    String name
    Closure when, steps, post
    long seconds = 0
    def options(Closure c) {
        def o = new Options(s: s)
        s.with(o, c)
        seconds = o.seconds
    }
    def when(Closure c) { when = c }
    def steps(Closure c) { steps = c }
    def post(Closure c) { post = c }
}

class When {
    Stub s
    boolean ok = true
    String why = ''
    def branch(String pattern) {
        def b = s.env['BRANCH_NAME'] ?: ''
        if (b != pattern) { ok = false; why += "branch '${b}' is not '${pattern}' " }
    }
    def expression(Closure c) {
        def v = s.with(new Expr(s: s), c)
        if (!v) { ok = false; why += 'expression is false ' }
    }
}

class Expr {
    Stub s
    def getParams() { s.params }
    def getEnv() { s.env }
}

class Steps {
    Stub s
    Map<String, String> extraEnv
    def getParams() { s.params }
    def getEnv() { s.env }
    def sh(String script) { sh(script: script) }
    def sh(Map m) {
        s.say("sh: ${m.script.readLines().find { it.trim() }?.trim()} ...")
        int rc = s.sh(m.script as String, extraEnv)
        if (rc != 0) { throw new RuntimeException("script returned exit code ${rc}") }
    }
    def usernamePassword(Map m) { [kind: 'usernamePassword'] + m }
    def file(Map m) { [kind: 'file'] + m }
    def string(Map m) { [kind: 'string'] + m }
    def withCredentials(List bindings, Closure c) {
        def e = new LinkedHashMap<String, String>(extraEnv)
        bindings.each { b ->
            if (b.kind == 'usernamePassword') {
                s.credential(b.credentialsId, 'username', e, b.usernameVariable)
                s.credential(b.credentialsId, 'password', e, b.passwordVariable)
            } else if (b.kind == 'file') {
                s.credential(b.credentialsId, 'file', e, b.variable)
            } else if (b.kind == 'string') {
                s.credential(b.credentialsId, 'secret', e, b.variable)
            } else {
                throw new IllegalArgumentException("stub: unknown binding ${b}")
            }
        }
        s.with(new Steps(s: s, extraEnv: e), c)
    }
    def script(Closure c) { s.with(this, c) }
    def junit(Map m) {
        def f = new File(s.workspace, m.testResults)
        if (!f.exists() && !m.allowEmptyResults) { throw new RuntimeException("junit: no ${m.testResults}") }
        s.say("junit: ${m.testResults} (${f.exists() ? f.length() + ' bytes' : 'none'})")
    }
    def archiveArtifacts(Map m) {
        def glob = m.artifacts as String
        def dir = new File(s.workspace, glob.contains('/') ? glob.substring(0, glob.lastIndexOf('/')) : '.')
        def pat = glob.substring(glob.lastIndexOf('/') + 1).replace('.', '\\.').replace('*', '.*')
        def found = dir.listFiles()?.findAll { it.name ==~ pat } ?: []
        if (!found) { throw new RuntimeException("archiveArtifacts: nothing matches ${glob}") }
        s.say("archiveArtifacts: ${found*.name}")
    }
    def cleanWs() {
        s.say('cleanWs')
        s.workspace.eachFile { it.isDirectory() ? it.deleteDir() : it.delete() }
    }
}

class Post {
    Stub s
    boolean failed
    def always(Closure c) { run('always', c) }
    def success(Closure c) { if (!failed) { run('success', c) } }
    def failure(Closure c) { if (failed) { run('failure', c) } }
    def run(String what, Closure c) {
        try {
            s.with(new Steps(s: s, extraEnv: [:]), c)
        } catch (Exception e) {
            s.failed = true
            s.say("post ${what} FAILED: ${e.message}")
        }
    }
}

def stub = new Stub()
def jenkinsfile = new File(args ? args[0] : 'Jenkinsfile')
def binding = new Binding()
binding.setVariable('pipeline', { Closure c -> stub.with(new Pipeline(s: stub), c) })
new GroovyShell(binding).evaluate(jenkinsfile)
stub.say('stages: ' + stub.log.join('; '))
if (stub.failed) {
    stub.say('pipeline FAILED')
    System.exit(1)
}
stub.say('pipeline passed')
