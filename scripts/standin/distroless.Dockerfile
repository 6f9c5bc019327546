# Stand-in for distroless's static nonroot image: only what that image gives a static
# binary, from the bookworm base: /etc/passwd and /etc/group with root, nobody and nonroot
# (65532), nonroot's home, /tmp, a CA bundle (the host's) and the time zones; no shell, no
# package manager. Its user is nonroot, by number, and its workdir nonroot's home, as in
# the real image.
ARG BASE
FROM ${BASE} AS files
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp /rootfs/home/nonroot /rootfs/root /rootfs/usr/share \
    && printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
       'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
       'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >/rootfs/etc/passwd \
    && printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >/rootfs/etc/group \
    && chmod 1777 /rootfs/tmp \
    && chmod 700 /rootfs/root \
    && chown 65532:65532 /rootfs/home/nonroot \
    && if [ -d /usr/share/zoneinfo ]; then cp -a /usr/share/zoneinfo /rootfs/usr/share/; fi
COPY ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt

FROM scratch
ARG STANDIN_FOR
LABEL org.opencontainers.image.description="local stand-in for ${STANDIN_FOR}, built by task-platform because the registry could not be reached" \
      org.task-platform.standin="true"
COPY --from=files /rootfs /
USER 65532:65532
WORKDIR /home/nonroot
