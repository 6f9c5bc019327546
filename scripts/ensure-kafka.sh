#!/usr/bin/env bash
# Provides the pinned Apache Kafka (the message broker of the postgres-kafka backend
# profile) and prints its directory, <cache>/kafka-<KAFKA_VERSION>, whose libs/ holds
# every jar needed to run, with `java -cp '<dir>/libs/*'`:
#   kafka.Kafka                                  the broker (KRaft: broker and controller)
#   kafka.tools.StorageTool                      `kafka-storage format`, run before the first start
#   org.apache.kafka.tools.ConsoleProducer, .consumer.ConsoleConsumer, .TopicCommand, ...
# and log4j2 behind slf4j, Kafka 4's logging backend (it logs where its
# -Dlog4j2.configurationFile says; tests/harness/backends.py writes one for stdout).
#
# The jars come from Maven Central, resolved by Maven from a generated pom: a package
# registry, reachable where downloads.apache.org (the release tarball) may not be. Needs Java 17+
# (the Kafka 4 broker's class files are Java 17) and mvn.
#
# Leaves behind: the jars in the cache, nothing else (Maven's own downloads go to a
# temporary local repository). Everything but the path goes to stderr, so callers can
# do: kafka_dir=$(scripts/ensure-kafka.sh)
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_root/versions.env"
cache_root=${TASK_PLATFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/task-platform}
kafka_dir=$cache_root/kafka-$KAFKA_VERSION
# The log4j2 release kafka-server $KAFKA_VERSION depends on (`mvn dependency:tree`): its
# slf4j 1.7 binding, which Kafka's own distribution ships but its pom does not name.
log4j_version=2.25.5
log() { printf 'ensure-kafka: %s\n' "$*" >&2; }

# libs/ is moved into place whole, only once complete: its broker jar means a cache hit.
provided() { [[ -f $kafka_dir/libs/kafka_2.13-$KAFKA_VERSION.jar ]]; }

if provided; then
  printf '%s\n' "$kafka_dir"
  exit 0
fi

# The specification version ("17", "21", "1.8") reads the same from every vendor's java.
java_version=$(java -XshowSettings:properties -version 2>&1 |
  sed -n 's/^ *java.specification.version = //p') || true
if ! [[ ${java_version%%.*} -ge 17 ]] 2>/dev/null; then
  log "MISSING: Java 17 or newer, to run Kafka $KAFKA_VERSION (found: ${java_version:-no java on PATH};"
  log "Debian: apt-get install openjdk-17-jre-headless)"
  exit 1
fi
if ! command -v mvn >/dev/null 2>&1; then
  log "MISSING: mvn (Apache Maven), to fetch Kafka $KAFKA_VERSION from Maven Central"
  log "(Debian: apt-get install maven)"
  exit 1
fi

# One resolution at a time: a second caller waits here, then finds the first one's jars.
mkdir -p "$kafka_dir"
exec 9>"$kafka_dir/.lock"
flock 9
if provided; then
  printf '%s\n' "$kafka_dir"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
log "fetching Kafka $KAFKA_VERSION from Maven Central (first time only: under a minute)"
cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.task-platform</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
      <exclusions>
        <!-- Only its connect-plugin-path tool needs Kafka Connect, which brings Jetty
             and Jersey (10 MB). -->
        <exclusion>
          <groupId>org.apache.kafka</groupId>
          <artifactId>connect-runtime</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$log4j_version</version>
    </dependency>
  </dependencies>
</project>
EOF
# Maven's output only when it fails (even --batch-mode --quiet prints colour resets).
if ! mvn --batch-mode --no-transfer-progress -f "$work/pom.xml" -Dmaven.repo.local="$work/m2" \
  org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$work/libs" >"$work/mvn.log" 2>&1; then
  cat "$work/mvn.log" >&2
  log "Maven could not resolve Kafka $KAFKA_VERSION from Maven Central (its output is above)"
  exit 1
fi
rm -rf "$kafka_dir/libs"
mv "$work/libs" "$kafka_dir/libs"
jars=$(find "$kafka_dir/libs" -name '*.jar' | wc -l)
log "fetched $jars jars ($(du -sh "$kafka_dir/libs" | cut -f1)) into $kafka_dir/libs in $(($(date +%s) - start)) s"
printf '%s\n' "$kafka_dir"
