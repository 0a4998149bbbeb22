#!/bin/sh
# The Tomcat backend of the lab: Debian's tomcat10 with Debian's defaults
# (HTTP/1.1 connector on 8080, connectionTimeout 20000, so keepAliveTimeout
# 20000), run in the foreground the way Debian's systemd unit runs it.
#
#   /opt/connlab/backends/tomcat-start.sh
#   CONNLAB_TOMCAT_KEEPALIVE_MS=360000 /opt/connlab/backends/tomcat-start.sh   # "fixed"
#
# The override rewrites the 8080 connector's connectionTimeout and sets
# keepAliveTimeout to the same value (what Spring's server.connection-timeout
# does). ROOT answers 200 "ok" on /.
set -eu

SERVER_XML=/etc/tomcat10/server.xml
if [ -n "${CONNLAB_TOMCAT_KEEPALIVE_MS:-}" ]; then
    ms=$CONNLAB_TOMCAT_KEEPALIVE_MS
    case $ms in *[!0-9]*|'') echo "tomcat-start: CONNLAB_TOMCAT_KEEPALIVE_MS must be an integer (ms)" >&2; exit 2;; esac
    # Only the uncommented <Connector port="8080" ...> element (up to its "/>").
    sed -i -e '/<Connector port="8080"/,/\/>/{
        s/ keepAliveTimeout="[0-9]*"//
        s/connectionTimeout="[0-9]*"/connectionTimeout="'"$ms"'" keepAliveTimeout="'"$ms"'"/
    }' "$SERVER_XML"
fi
echo "tomcat-start: connector: $(sed -n '/<Connector port="8080"/,/\/>/p' "$SERVER_XML" | tr -s ' \n' ' ')" >&2

# What Debian's tomcat10.service sets before /usr/libexec/tomcat10/tomcat-start.sh.
export CATALINA_HOME=/usr/share/tomcat10
export CATALINA_BASE=/var/lib/tomcat10
export CATALINA_TMPDIR=/tmp
exec /usr/libexec/tomcat10/tomcat-start.sh
