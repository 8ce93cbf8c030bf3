# Shared by the set-up scripts that take jars from Maven Central: sourced, not run.
# The caller sets TOOLS (the ignored cache) and defines say(). One local repository for all of them,
# so a jar two scripts need (kafka-clients, slf4j...) is downloaded once.
MAVEN_REPO="$TOOLS/m2-repository"
MAVEN_DEP_PLUGIN=3.8.1  # pinned: Maven 3.8's default maven-dependency-plugin is too old for some poms

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs_since() { local d=$(( $(now_ms) - $1 )); printf "%d.%01d" $((d / 1000)) $(((d % 1000) / 100)); }

# maven_tools INSTALL TOOL...: every TOOL (mvn, java, javac) on PATH, or return 3. With INSTALL=1,
# as root, apt-get installs maven and a headless JDK first where one is missing.
maven_tools() {
    local install=$1 tool missing=()
    shift
    for tool in "$@"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
    if (( ${#missing[@]} > 0 )) && [[ "$install" == 1 ]]; then
        if [[ "$(id -u)" != 0 ]]; then say "${missing[*]} missing and not root: cannot apt-get install"; return 3; fi
        say "installing maven and a headless JDK with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq --no-install-recommends maven default-jdk-headless >/dev/null
        missing=()
        for tool in "$@"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
    fi
    if (( ${#missing[@]} > 0 )); then say "${missing[*]} not found on PATH; nothing done"; return 3; fi
}

# maven_lock NAME: serialize concurrent runs of one script (several pytest sessions and CI at once).
maven_lock() {
    mkdir -p "$TOOLS"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$TOOLS/.$1.lock"
        flock 9
    fi
}

# maven_pom FILE GROUP:ARTIFACT:VERSION...: a pom whose dependencies are those coordinates.
maven_pom() {
    local file=$1 coord g a v
    shift
    mkdir -p "$(dirname "$file")"
    {
        echo '<project xmlns="http://maven.apache.org/POM/4.0.0">'
        echo '  <modelVersion>4.0.0</modelVersion>'
        echo '  <groupId>local.pykbroker</groupId><artifactId>tools</artifactId><version>1</version><packaging>pom</packaging>'
        echo '  <dependencies>'
        for coord in "$@"; do
            IFS=: read -r g a v <<<"$coord"
            echo "    <dependency><groupId>$g</groupId><artifactId>$a</artifactId><version>$v</version></dependency>"
        done
        echo '  </dependencies>'
        echo "  <build><plugins><plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>$MAVEN_DEP_PLUGIN</version></plugin></plugins></build>"
        echo '</project>'
    } >"$file"
}

# maven_copy POM DIR: the pom's runtime dependencies copied into DIR (replaced whole, or left as it was).
# mvn's output goes to mvn.log beside the pom; its tail is shown on failure.
maven_copy() {
    local pom=$1 dir=$2 tmp t0
    tmp="$(mktemp -d "$dir.tmp.XXXXXX")"
    t0=$(now_ms)
    if ! mvn -B -q -Dstyle.color=never -f "$pom" -Dmaven.repo.local="$MAVEN_REPO" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp" >"$(dirname "$pom")/mvn.log" 2>&1; then
        rm -rf "$tmp"
        tail -n 30 "$(dirname "$pom")/mvn.log" >&2 || true
        say "mvn failed (is Maven Central reachable?); full log: $(dirname "$pom")/mvn.log"
        return 1
    fi
    rm -rf "$dir"
    mv "$tmp" "$dir"
    say "$(ls "$dir" | wc -l) jars ($(du -sh "$dir" | cut -f1)) into $dir in $(secs_since "$t0") s"
}
