/*
 * The content-addressed store: path builders, atomic publication of
 * blobs, media types and tag records, and the sweep of temp files.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci_ref.h"
#include "oci_store.h"


#define OCI_STORE_MARKER_LINE  "ocimirror store v1\n"
#define OCI_STORE_SMALL_MAX  1024     /* a tag record or a type line */


static int oci_store_hex_valid(const char *hex);
static size_t oci_store_root_len(const char *root);
static int oci_store_path(char *out, size_t cap, const char *root,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void oci_store_mode_fix(const char *path, mode_t mode);
static int oci_store_mkdir_p(char *path);
static int oci_store_mkdir_parent(const char *path);
static int oci_store_fsync_dir(const char *dir, size_t len);
static int oci_store_write_atomic(const char *root, const char *path,
    const char *data, size_t len, int do_fsync);
static int oci_store_read_small(const char *path, char *buf, size_t cap,
    size_t *len);
static int oci_store_parse_num(const char **p, const char *end, char stop,
    long long *out);


static int
oci_store_hex_valid(const char *hex)
{
    size_t  i;
    int     c;

    if (hex == NULL) {
        return 0;
    }

    for (i = 0; i < OCI_SHA256_HEX_LEN; i++) {
        c = (unsigned char) hex[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }

    return hex[OCI_SHA256_HEX_LEN] == '\0';
}


/* root without its trailing slashes ("/" gives 0: paths start "/sha256") */
static size_t
oci_store_root_len(const char *root)
{
    size_t  len;

    len = strlen(root);

    while (len > 0 && root[len - 1] == '/') {
        len--;
    }

    return len;
}


static int
oci_store_path(char *out, size_t cap, const char *root, const char *fmt, ...)
{
    va_list  ap;
    size_t   rlen;
    int      n;

    if (root == NULL || out == NULL) {
        return OCI_EINVAL;
    }

    rlen = oci_store_root_len(root);

    if (rlen >= cap) {
        return OCI_ERANGE;
    }

    memcpy(out, root, rlen);

    va_start(ap, fmt);
    n = vsnprintf(out + rlen, cap - rlen, fmt, ap);
    va_end(ap);

    if (n < 0 || (size_t) n >= cap - rlen) {
        out[0] = '\0';
        return OCI_ERANGE;
    }

    return OCI_OK;
}


int
oci_store_blob_path(const char *root, const char *hex, char *out, size_t cap)
{
    if (!oci_store_hex_valid(hex)) {
        return OCI_EINVAL;
    }

    return oci_store_path(out, cap, root, "/sha256/%.2s/%s", hex, hex);
}


int
oci_store_type_path(const char *root, const char *hex, char *out, size_t cap)
{
    if (!oci_store_hex_valid(hex)) {
        return OCI_EINVAL;
    }

    return oci_store_path(out, cap, root, "/types/sha256/%.2s/%s", hex, hex);
}


int
oci_store_tag_path(const char *root, const char *registry, const char *name,
    const char *tag, char *out, size_t cap)
{
    if (registry == NULL || name == NULL || tag == NULL
        || !oci_host_valid(registry, strlen(registry))
        || !oci_name_valid(name, strlen(name))
        || !oci_tag_valid(tag, strlen(tag)))
    {
        return OCI_EINVAL;
    }

    return oci_store_path(out, cap, root, "/tags/%s/%s/@%s", registry, name,
                          tag);
}


/*
 * Workers (another user, in the store's group) read what the fetcher
 * makes: a umask narrower than 027 must not take the group's bits away.
 * The set-group-ID bit a directory inherits from its parent (see
 * oci_store_share()) is kept, and chmod() is called only when the umask
 * did narrow the mode: a sandbox that refuses to set that bit
 * (systemd's RestrictSUIDSGID=) then never sees it asked for.
 */
static void
oci_store_mode_fix(const char *path, mode_t mode)
{
    struct stat  st;

    if (stat(path, &st) == -1) {
        return;
    }

    mode |= st.st_mode & S_ISGID;

    if ((st.st_mode & 07777) != mode) {
        (void) chmod(path, mode);
    }
}


/* mkdir -p; path is modified in place and restored */
static int
oci_store_mkdir_p(char *path)
{
    char  *p;
    int    last;

    p = path;

    while (*p == '/') {
        p++;
    }

    for ( ;; ) {
        while (*p != '\0' && *p != '/') {
            p++;
        }

        last = (*p == '\0');
        *p = '\0';

        if (mkdir(path, OCI_STORE_DIR_MODE) == 0) {
            oci_store_mode_fix(path, OCI_STORE_DIR_MODE);

        } else if (errno != EEXIST) {
            if (!last) {
                *p = '/';
            }
            return OCI_EIO;
        }

        if (last) {
            return OCI_OK;
        }

        *p++ = '/';

        while (*p == '/') {
            p++;
        }

        if (*p == '\0') {
            return OCI_OK;
        }
    }
}


static int
oci_store_mkdir_parent(const char *path)
{
    char    dir[OCI_PATH_MAX];
    char   *slash;
    size_t  len;

    len = strlen(path);

    if (len >= sizeof(dir)) {
        errno = ENAMETOOLONG;
        return OCI_EIO;
    }

    memcpy(dir, path, len + 1);

    slash = strrchr(dir, '/');

    if (slash == NULL || slash == dir) {
        return OCI_OK;
    }

    *slash = '\0';

    return oci_store_mkdir_p(dir);
}


static int
oci_store_fsync_dir(const char *dir, size_t len)
{
    char  buf[OCI_PATH_MAX];
    int   fd, rc, err;

    if (len == 0) {
        len = 1;                  /* the root directory */
    }

    if (len >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return OCI_EIO;
    }

    memcpy(buf, dir, len);
    buf[len] = '\0';

    fd = open(buf, O_RDONLY | O_DIRECTORY);

    if (fd == -1) {
        return OCI_EIO;
    }

    rc = fsync(fd);
    err = errno;
    close(fd);

    if (rc == -1) {
        errno = err;
        return OCI_EIO;
    }

    return OCI_OK;
}


int
oci_write_all(int fd, const char *p, size_t n, long long off)
{
    ssize_t  w;
    size_t   done;

    for (done = 0; done < n; done += (size_t) w) {
        if (off < 0) {
            w = write(fd, p + done, n - done);

        } else {
            w = pwrite(fd, p + done, n - done,
                       (off_t) (off + (long long) done));
        }

        if (w < 0) {
            if (errno == EINTR) {
                w = 0;
                continue;
            }

            return -1;
        }
    }

    return 0;
}


/*
 * write a small file whole: a temp file under <root>/tmp (the same
 * filesystem, and swept at start if a crash leaves it), then rename
 */
static int
oci_store_write_atomic(const char *root, const char *path, const char *data,
    size_t len, int do_fsync)
{
    char         tmp[OCI_PATH_MAX];
    const char  *slash;
    size_t       dlen;
    int          fd, err;

    slash = strrchr(path, '/');

    if (slash == NULL) {
        errno = EINVAL;
        return OCI_EIO;
    }

    dlen = (size_t) (slash - path);

    if (oci_store_path(tmp, sizeof(tmp), root, "/tmp/rec.XXXXXX") != OCI_OK)
    {
        errno = ENAMETOOLONG;
        return OCI_EIO;
    }

    fd = mkstemp(tmp);

    if (fd == -1) {
        return OCI_EIO;
    }

    if (fchmod(fd, OCI_STORE_FILE_MODE) == -1) {
        goto failed;
    }

    if (oci_write_all(fd, data, len, -1) != 0) {
        goto failed;
    }

    if (do_fsync && fsync(fd) == -1) {
        goto failed;
    }

    if (close(fd) == -1) {
        fd = -1;
        goto failed;
    }

    fd = -1;

    if (rename(tmp, path) == -1) {
        goto failed;
    }

    if (do_fsync) {
        return oci_store_fsync_dir(path, dlen);
    }

    return OCI_OK;

failed:

    err = errno;

    if (fd != -1) {
        close(fd);
    }

    unlink(tmp);
    errno = err;

    return OCI_EIO;
}


/* read a whole small file; OCI_ENOENT, OCI_EIO, OCI_EINVAL if too big */
static int
oci_store_read_small(const char *path, char *buf, size_t cap, size_t *len)
{
    ssize_t  n;
    size_t   got;
    int      fd, err;

    fd = open(path, O_RDONLY);

    if (fd == -1) {
        return (errno == ENOENT || errno == ENOTDIR) ? OCI_ENOENT : OCI_EIO;
    }

    got = 0;

    for ( ;; ) {
        n = read(fd, buf + got, cap - got);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            err = errno;
            close(fd);
            errno = err;
            return OCI_EIO;
        }

        if (n == 0) {
            break;
        }

        got += (size_t) n;

        if (got == cap) {
            close(fd);
            return OCI_EINVAL;
        }
    }

    close(fd);
    *len = got;

    return OCI_OK;
}


int
oci_store_prepare(const char *root, char *err, size_t errlen)
{
    static const char *const  dirs[] = {
        "", "/sha256", "/types", "/types/sha256", "/tags", "/tmp", NULL
    };

    char         path[OCI_PATH_MAX];
    struct stat  st;
    size_t       i;
    int          rc;

    for (i = 0; dirs[i] != NULL; i++) {
        rc = oci_store_path(path, sizeof(path), root, "%s", dirs[i]);

        if (rc != OCI_OK) {
            snprintf(err, errlen, "store path \"%s\" is too long", root);
            errno = ENAMETOOLONG;
            return OCI_EIO;
        }

        if (path[0] == '\0') {
            continue;              /* the root "/" itself */
        }

        if (oci_store_mkdir_p(path) != OCI_OK) {
            snprintf(err, errlen, "mkdir(\"%s\") failed: %s", path,
                     strerror(errno));
            return OCI_EIO;
        }

        if (stat(path, &st) == -1) {
            snprintf(err, errlen, "stat(\"%s\") failed: %s", path,
                     strerror(errno));
            return OCI_EIO;
        }

        if (!S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            snprintf(err, errlen, "\"%s\" is not a directory", path);
            return OCI_EIO;
        }
    }

    if (oci_store_path(path, sizeof(path), root, "/%s", OCI_STORE_MARKER)
        != OCI_OK)
    {
        snprintf(err, errlen, "store path \"%s\" is too long", root);
        errno = ENAMETOOLONG;
        return OCI_EIO;
    }

    if (access(path, F_OK) == 0) {
        return OCI_OK;
    }

    if (errno != ENOENT
        || oci_store_write_atomic(root, path, OCI_STORE_MARKER_LINE,
                                  sizeof(OCI_STORE_MARKER_LINE) - 1, 1)
           != OCI_OK)
    {
        snprintf(err, errlen, "cannot write \"%s\": %s", path,
                 strerror(errno));
        return OCI_EIO;
    }

    return OCI_OK;
}


int
oci_store_share(const char *root, long gid, char *err, size_t errlen)
{
    static const struct {
        const char  *dir;
        mode_t       mode;
    } dirs[] = {
        { "", OCI_STORE_DIR_MODE },
        { "/sha256", OCI_STORE_DIR_MODE },
        { "/types", OCI_STORE_DIR_MODE },
        { "/types/sha256", OCI_STORE_DIR_MODE },
        { "/tags", OCI_STORE_DIR_MODE },
        { "/tmp", OCI_STORE_TMP_MODE },
        { NULL, 0 }
    };

    char         path[OCI_PATH_MAX];
    struct stat  st;
    mode_t       mode;
    size_t       i;

    for (i = 0; dirs[i].dir != NULL; i++) {
        if (oci_store_path(path, sizeof(path), root, "%s", dirs[i].dir)
            != OCI_OK)
        {
            snprintf(err, errlen, "store path \"%s\" is too long", root);
            errno = ENAMETOOLONG;
            return OCI_EIO;
        }

        if (path[0] == '\0') {
            continue;              /* the root "/" itself: not ours */
        }

        if (stat(path, &st) == -1) {
            snprintf(err, errlen, "stat(\"%s\") failed: %s", path,
                     strerror(errno));
            return OCI_EIO;
        }

        if (gid >= 0 && st.st_gid != (gid_t) gid) {
            if (chown(path, (uid_t) -1, (gid_t) gid) == -1) {
                snprintf(err, errlen, "chown(\"%s\", group %ld) failed: %s",
                         path, gid, strerror(errno));
                return OCI_EIO;
            }

            /* chown() may clear the set-group-ID bit: look again */
            if (stat(path, &st) == -1) {
                snprintf(err, errlen, "stat(\"%s\") failed: %s", path,
                         strerror(errno));
                return OCI_EIO;
            }
        }

        mode = (st.st_mode & 07777) | dirs[i].mode;

        if (gid >= 0 && (gid_t) gid != getegid()) {
            mode |= S_ISGID;
        }

        if (mode != (st.st_mode & 07777) && chmod(path, mode) == -1) {
            snprintf(err, errlen, "chmod(\"%s\", %04o) failed: %s", path,
                     (unsigned) mode, strerror(errno));
            return OCI_EIO;
        }
    }

    /* the marker was written before the root had the group: readiness
     * reads it through the group */
    if (oci_store_path(path, sizeof(path), root, "/%s", OCI_STORE_MARKER)
        != OCI_OK)
    {
        snprintf(err, errlen, "store path \"%s\" is too long", root);
        errno = ENAMETOOLONG;
        return OCI_EIO;
    }

    if (lstat(path, &st) == -1) {
        snprintf(err, errlen, "stat(\"%s\") failed: %s", path,
                 strerror(errno));
        return OCI_EIO;
    }

    if (gid >= 0 && st.st_gid != (gid_t) gid
        && lchown(path, (uid_t) -1, (gid_t) gid) == -1)
    {
        snprintf(err, errlen, "chown(\"%s\", group %ld) failed: %s", path,
                 gid, strerror(errno));
        return OCI_EIO;
    }

    mode = (st.st_mode & 0777) | OCI_STORE_FILE_MODE;

    if (S_ISREG(st.st_mode) && mode != (st.st_mode & 07777)
        && chmod(path, mode) == -1)
    {
        snprintf(err, errlen, "chmod(\"%s\", %04o) failed: %s", path,
                 (unsigned) mode, strerror(errno));
        return OCI_EIO;
    }

    return OCI_OK;
}


int
oci_store_sweep(const char *root)
{
    char            path[OCI_PATH_MAX];
    DIR            *dir;
    struct dirent  *de;
    struct stat     st;
    int             dfd, count, err;

    if (oci_store_path(path, sizeof(path), root, "/tmp") != OCI_OK) {
        errno = ENAMETOOLONG;
        return OCI_EIO;
    }

    dir = opendir(path);

    if (dir == NULL) {
        return (errno == ENOENT) ? 0 : OCI_EIO;
    }

    dfd = dirfd(dir);
    count = 0;

    for ( ;; ) {
        errno = 0;
        de = readdir(dir);

        if (de == NULL) {
            break;
        }

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }

        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
            if (errno == ENOENT) {
                continue;
            }
            goto failed;
        }

        if (!S_ISREG(st.st_mode)) {
            continue;
        }

        if (unlinkat(dfd, de->d_name, 0) == -1) {
            if (errno == ENOENT) {
                continue;
            }
            goto failed;
        }

        count++;
    }

    if (errno != 0) {
        goto failed;
    }

    closedir(dir);

    return count;

failed:

    err = errno;
    closedir(dir);
    errno = err;

    return OCI_EIO;
}


int
oci_store_tmp_create(const char *root, char *path_out, size_t cap)
{
    int  fd, err;

    if (oci_store_path(path_out, cap, root, "/tmp/dl.XXXXXX") != OCI_OK) {
        errno = ENAMETOOLONG;
        return OCI_EIO;
    }

    fd = mkstemp(path_out);

    if (fd == -1) {
        return OCI_EIO;
    }

    if (fchmod(fd, OCI_STORE_FILE_MODE) == -1
        || fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
    {
        err = errno;
        close(fd);
        unlink(path_out);
        errno = err;
        return OCI_EIO;
    }

    return fd;
}


int
oci_store_commit(const char *root, const char *tmp_path, int fd,
    const char *hex, int do_fsync)
{
    char  dst[OCI_PATH_MAX];
    char *shard, *sha;
    int   rc, tfd, err, created;

    if (oci_store_blob_path(root, hex, dst, sizeof(dst)) != OCI_OK) {
        errno = EINVAL;
        return OCI_EIO;
    }

    if (access(dst, F_OK) == 0) {
        /* the same bytes are there already */
        unlink(tmp_path);
        return OCI_OK;
    }

    if (do_fsync) {
        if (fd >= 0) {
            rc = fsync(fd);

        } else {
            tfd = open(tmp_path, O_RDONLY);

            if (tfd == -1) {
                return OCI_EIO;
            }

            rc = fsync(tfd);
            err = errno;
            close(tfd);
            errno = err;
        }

        if (rc == -1) {
            return OCI_EIO;
        }
    }

    shard = strrchr(dst, '/');
    created = 0;

    if (do_fsync) {
        *shard = '\0';
        created = access(dst, F_OK) != 0;
        *shard = '/';
    }

    if (oci_store_mkdir_parent(dst) != OCI_OK) {
        return OCI_EIO;
    }

    if (rename(tmp_path, dst) == -1) {
        return OCI_EIO;
    }

    if (do_fsync) {
        if (oci_store_fsync_dir(dst, (size_t) (shard - dst)) != OCI_OK) {
            return OCI_EIO;
        }

        /* a new shard directory is an entry of sha256/: make it durable
         * too, or the blob may vanish with it after a crash */
        if (created) {
            *shard = '\0';
            sha = strrchr(dst, '/');
            *shard = '/';
            return oci_store_fsync_dir(dst, (size_t) (sha - dst));
        }
    }

    return OCI_OK;
}


int
oci_store_type_write(const char *root, const char *hex,
    const char *media_type, int do_fsync)
{
    char    path[OCI_PATH_MAX];
    char    line[OCI_MEDIA_TYPE_MAX + 2];
    size_t  len;
    int     rc;

    if (media_type == NULL) {
        return OCI_EINVAL;
    }

    len = strlen(media_type);

    if (!oci_media_type_valid(media_type, len)) {
        return OCI_EINVAL;
    }

    rc = oci_store_type_path(root, hex, path, sizeof(path));

    if (rc != OCI_OK) {
        return rc;
    }

    memcpy(line, media_type, len);
    line[len] = '\n';

    if (oci_store_mkdir_parent(path) != OCI_OK) {
        return OCI_EIO;
    }

    return oci_store_write_atomic(root, path, line, len + 1, do_fsync);
}


int
oci_store_type_read(const char *root, const char *hex, char *out, size_t cap)
{
    char    path[OCI_PATH_MAX];
    char    buf[OCI_MEDIA_TYPE_MAX + 2];
    size_t  len;
    int     rc;

    rc = oci_store_type_path(root, hex, path, sizeof(path));

    if (rc != OCI_OK) {
        return rc;
    }

    rc = oci_store_read_small(path, buf, sizeof(buf), &len);

    if (rc != OCI_OK) {
        return rc;
    }

    if (len < 2 || buf[len - 1] != '\n'
        || !oci_media_type_valid(buf, len - 1))
    {
        return OCI_EINVAL;
    }

    if (len > cap) {
        return OCI_ERANGE;
    }

    memcpy(out, buf, len - 1);
    out[len - 1] = '\0';

    return OCI_OK;
}


int
oci_tag_record_format(const oci_tag_record_t *rec, char *buf, size_t cap)
{
    size_t  dlen, mlen;
    int     n;

    dlen = strnlen(rec->digest, sizeof(rec->digest));
    mlen = strnlen(rec->media_type, sizeof(rec->media_type));

    if (dlen == sizeof(rec->digest)
        || oci_digest_parse(rec->digest, dlen, NULL) != OCI_OK
        || mlen == sizeof(rec->media_type)
        || !oci_media_type_valid(rec->media_type, mlen)
        || rec->size < 0 || rec->fetched_at < 0)
    {
        return OCI_EINVAL;
    }

    n = snprintf(buf, cap, "%s %lld %s %lld\n", rec->digest, rec->size,
                 rec->media_type, rec->fetched_at);

    if (n < 0 || (size_t) n >= cap) {
        return OCI_ERANGE;
    }

    return n;
}


/* a decimal number without sign or leading zeros, ended by stop */
static int
oci_store_parse_num(const char **p, const char *end, char stop,
    long long *out)
{
    const char  *s;
    long long    v;
    int          d;

    s = *p;
    v = 0;

    if (s == end || *s < '0' || *s > '9' || (*s == '0' && s + 1 < end
                                             && s[1] != stop))
    {
        return OCI_EINVAL;
    }

    while (s < end && *s >= '0' && *s <= '9') {
        d = *s - '0';

        if (v > (LLONG_MAX - d) / 10) {
            return OCI_EINVAL;
        }

        v = v * 10 + d;
        s++;
    }

    if (s == end || *s != stop) {
        return OCI_EINVAL;
    }

    *p = s + 1;
    *out = v;

    return OCI_OK;
}


int
oci_tag_record_parse(const char *buf, size_t len, oci_tag_record_t *rec)
{
    const char  *p, *end, *sp;

    if (buf == NULL || len == 0 || buf[len - 1] != '\n') {
        return OCI_EINVAL;
    }

    memset(rec, 0, sizeof(oci_tag_record_t));

    p = buf;
    end = buf + len;

    sp = memchr(p, ' ', (size_t) (end - p));

    if (sp == NULL || sp - p != OCI_DIGEST_MAX
        || oci_digest_parse(p, (size_t) (sp - p), NULL) != OCI_OK)
    {
        return OCI_EINVAL;
    }

    memcpy(rec->digest, p, OCI_DIGEST_MAX);
    rec->digest[OCI_DIGEST_MAX] = '\0';
    p = sp + 1;

    if (oci_store_parse_num(&p, end, ' ', &rec->size) != OCI_OK) {
        return OCI_EINVAL;
    }

    sp = memchr(p, ' ', (size_t) (end - p));

    if (sp == NULL || !oci_media_type_valid(p, (size_t) (sp - p))) {
        return OCI_EINVAL;
    }

    memcpy(rec->media_type, p, (size_t) (sp - p));
    rec->media_type[sp - p] = '\0';
    p = sp + 1;

    if (oci_store_parse_num(&p, end, '\n', &rec->fetched_at) != OCI_OK
        || p != end)
    {
        return OCI_EINVAL;
    }

    return OCI_OK;
}


int
oci_tag_record_write(const char *root, const char *registry,
    const char *name, const char *tag, const oci_tag_record_t *rec,
    int do_fsync)
{
    char  path[OCI_PATH_MAX];
    char  line[OCI_STORE_SMALL_MAX];
    int   n, rc;

    rc = oci_store_tag_path(root, registry, name, tag, path, sizeof(path));

    if (rc != OCI_OK) {
        return rc;
    }

    n = oci_tag_record_format(rec, line, sizeof(line));

    if (n < 0) {
        return n;
    }

    if (oci_store_mkdir_parent(path) != OCI_OK) {
        return OCI_EIO;
    }

    return oci_store_write_atomic(root, path, line, (size_t) n, do_fsync);
}


int
oci_tag_record_read(const char *root, const char *registry,
    const char *name, const char *tag, oci_tag_record_t *rec)
{
    char    path[OCI_PATH_MAX];
    char    line[OCI_STORE_SMALL_MAX];
    size_t  len;
    int     rc;

    rc = oci_store_tag_path(root, registry, name, tag, path, sizeof(path));

    if (rc != OCI_OK) {
        return rc;
    }

    rc = oci_store_read_small(path, line, sizeof(line), &len);

    if (rc != OCI_OK) {
        return rc;
    }

    return oci_tag_record_parse(line, len, rec);
}


int
oci_store_taglist_path(const char *root, const char *registry,
    const char *name, char *out, size_t cap)
{
    if (registry == NULL || name == NULL
        || !oci_host_valid(registry, strlen(registry))
        || !oci_name_valid(name, strlen(name)))
    {
        return OCI_EINVAL;
    }

    return oci_store_path(out, cap, root, "/taglists/%s/%s/@list", registry,
                          name);
}


int
oci_store_referrers_path(const char *root, const char *registry,
    const char *name, const char *hex, char *out, size_t cap)
{
    if (registry == NULL || name == NULL
        || !oci_host_valid(registry, strlen(registry))
        || !oci_name_valid(name, strlen(name))
        || !oci_store_hex_valid(hex))
    {
        return OCI_EINVAL;
    }

    return oci_store_path(out, cap, root, "/referrers/%s/%s/@%s", registry,
                          name, hex);
}


int
oci_store_cache_write(const char *root, const char *path, const char *data,
    size_t len, int do_fsync)
{
    if (oci_store_mkdir_parent(path) != OCI_OK) {
        return OCI_EIO;
    }

    return oci_store_write_atomic(root, path, data, len, do_fsync);
}


int
oci_store_cache_read(const char *path, size_t max, char **out, size_t *len,
    long long *mtime)
{
    struct stat  st;
    char        *buf;
    size_t       got;
    ssize_t      n;
    int          fd, err;

    fd = open(path, O_RDONLY);

    if (fd == -1) {
        return (errno == ENOENT || errno == ENOTDIR) ? OCI_ENOENT : OCI_EIO;
    }

    if (fstat(fd, &st) == -1) {
        goto failed;
    }

    if (st.st_size < 0 || (unsigned long long) st.st_size > max) {
        close(fd);
        return OCI_ERANGE;
    }

    buf = malloc((size_t) st.st_size + 1);

    if (buf == NULL) {
        close(fd);
        return OCI_ENOMEM;
    }

    /* the file is replaced by rename(), never rewritten: its size holds */

    for (got = 0; got < (size_t) st.st_size; got += (size_t) n) {
        n = read(fd, buf + got, (size_t) st.st_size - got);

        if (n == -1 && errno == EINTR) {
            n = 0;
            continue;
        }

        if (n <= 0) {
            err = (n == 0) ? EIO : errno;
            free(buf);
            close(fd);
            errno = err;
            return OCI_EIO;
        }
    }

    close(fd);

    buf[got] = '\0';
    *out = buf;
    *len = got;
    *mtime = (long long) st.st_mtime;

    return OCI_OK;

failed:

    err = errno;
    close(fd);
    errno = err;

    return OCI_EIO;
}
