/*
 * Unit tests for src/oci_store.c, each in a fresh temp dir.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "oci_ref.h"
#include "oci_store.h"
#include "test_util.h"


#define HEX64 \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HEX64B \
    "ab23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DIGEST  "sha256:" HEX64


typedef struct {
    char  root[64];
    char  path[OCI_PATH_MAX];
    char  err[512];
} fixture_t;


static int
setup(void **state)
{
    fixture_t  *f;

    f = calloc(1, sizeof(fixture_t));
    if (f == NULL) {
        return -1;
    }

    strcpy(f->root, "/tmp/oci-test-store.XXXXXX");

    if (mkdtemp(f->root) == NULL) {
        free(f);
        return -1;
    }

    *state = f;

    return 0;
}


/* a prepared store */
static int
setup_prepared(void **state)
{
    fixture_t  *f;

    if (setup(state) != 0) {
        return -1;
    }

    f = *state;

    return oci_store_prepare(f->root, f->err, sizeof(f->err)) == OCI_OK
           ? 0 : -1;
}


static int
teardown(void **state)
{
    fixture_t  *f = *state;

    test_rm_rf(f->root);
    free(f);

    return 0;
}


static void
write_file(const char *path, const char *text)
{
    FILE  *fp;

    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}


static void
read_file(const char *path, char *buf, size_t cap)
{
    FILE    *fp;
    size_t   n;

    fp = fopen(path, "r");
    assert_non_null(fp);
    n = fread(buf, 1, cap - 1, fp);
    buf[n] = '\0';
    fclose(fp);
}


static mode_t
file_mode(const char *path)
{
    struct stat  st;

    assert_int_equal(stat(path, &st), 0);

    return st.st_mode & 07777;
}


static void
test_paths(void **state)
{
    char  buf[512];
    char  small[20];

    assert_int_equal(oci_store_blob_path("/s", HEX64, buf, sizeof(buf)),
                     OCI_OK);
    assert_string_equal(buf, "/s/sha256/01/" HEX64);

    /* trailing slashes of the root are dropped */
    assert_int_equal(oci_store_blob_path("/s//", HEX64, buf, sizeof(buf)),
                     OCI_OK);
    assert_string_equal(buf, "/s/sha256/01/" HEX64);
    assert_int_equal(oci_store_blob_path("/", HEX64, buf, sizeof(buf)),
                     OCI_OK);
    assert_string_equal(buf, "/sha256/01/" HEX64);

    assert_int_equal(oci_store_type_path("/s", HEX64B, buf, sizeof(buf)),
                     OCI_OK);
    assert_string_equal(buf, "/s/types/sha256/ab/" HEX64B);

    assert_int_equal(oci_store_tag_path("/s", "localhost:5000", "a/b",
                                        "v1.0", buf, sizeof(buf)), OCI_OK);
    assert_string_equal(buf, "/s/tags/localhost:5000/a/b/@v1.0");

    /* bad parts never reach a path */
    assert_int_equal(oci_store_blob_path("/s", "../../etc/passwd", buf,
                                         sizeof(buf)), OCI_EINVAL);
    assert_int_equal(oci_store_blob_path("/s", HEX64 "0", buf, sizeof(buf)),
                     OCI_EINVAL);
    assert_int_equal(oci_store_blob_path("/s", "0123456789ABCDEF"
                                         "0123456789abcdef0123456789abcdef"
                                         "0123456789abcdef", buf,
                                         sizeof(buf)), OCI_EINVAL);
    assert_int_equal(oci_store_tag_path("/s", "docker.io", "a/../b", "x",
                                        buf, sizeof(buf)), OCI_EINVAL);
    assert_int_equal(oci_store_tag_path("/s", "..", "a", "x", buf,
                                        sizeof(buf)), OCI_EINVAL);
    assert_int_equal(oci_store_tag_path("/s", "docker.io", "a", "../x", buf,
                                        sizeof(buf)), OCI_EINVAL);
    assert_int_equal(oci_store_tag_path("/s", "docker.io", "a", "", buf,
                                        sizeof(buf)), OCI_EINVAL);

    /* too small: ERANGE, exactly enough: OK */
    assert_int_equal(oci_store_blob_path("/s", HEX64, small, sizeof(small)),
                     OCI_ERANGE);
    assert_int_equal(oci_store_blob_path("/s", HEX64, buf,
                                         strlen("/s/sha256/01/" HEX64)),
                     OCI_ERANGE);
    assert_int_equal(oci_store_blob_path("/s", HEX64, buf,
                                         strlen("/s/sha256/01/" HEX64) + 1),
                     OCI_OK);
    assert_int_equal(oci_store_tag_path("/s", "a.io", "b", "c", small, 17),
                     OCI_ERANGE);
    assert_int_equal(oci_store_tag_path("/s", "a.io", "b", "c", small, 18),
                     OCI_OK);
    assert_string_equal(small, "/s/tags/a.io/b/@c");
}


static void
test_prepare(void **state)
{
    fixture_t  *f = *state;
    char        buf[128];
    char        root[128];

    /* the root itself is created too */
    snprintf(root, sizeof(root), "%s/store/x", f->root);
    assert_int_equal(oci_store_prepare(root, f->err, sizeof(f->err)),
                     OCI_OK);

    snprintf(f->path, sizeof(f->path), "%s/sha256", root);
    assert_int_equal(file_mode(f->path), 0750);
    snprintf(f->path, sizeof(f->path), "%s/types/sha256", root);
    assert_int_equal(file_mode(f->path), 0750);
    snprintf(f->path, sizeof(f->path), "%s/tags", root);
    assert_int_equal(file_mode(f->path), 0750);
    snprintf(f->path, sizeof(f->path), "%s/tmp", root);
    assert_int_equal(file_mode(f->path), 0750);

    snprintf(f->path, sizeof(f->path), "%s/" OCI_STORE_MARKER, root);
    read_file(f->path, buf, sizeof(buf));
    assert_string_equal(buf, "ocimirror store v1\n");
    assert_int_equal(file_mode(f->path), 0640);

    /* again: fine, the marker is left alone */
    write_file(f->path, "ocimirror store v1\n# kept\n");
    assert_int_equal(oci_store_prepare(root, f->err, sizeof(f->err)),
                     OCI_OK);
    read_file(f->path, buf, sizeof(buf));
    assert_string_equal(buf, "ocimirror store v1\n# kept\n");

    /* no temp files left behind in the root */
    snprintf(f->path, sizeof(f->path), "%s/tmp", root);
    assert_int_equal(oci_store_sweep(root), 0);

    /* a file where a directory belongs */
    snprintf(root, sizeof(root), "%s/bad", f->root);
    assert_int_equal(mkdir(root, 0755), 0);
    snprintf(f->path, sizeof(f->path), "%s/tmp", root);
    write_file(f->path, "x");
    assert_int_equal(oci_store_prepare(root, f->err, sizeof(f->err)),
                     OCI_EIO);
    assert_non_null(strstr(f->err, "/bad/tmp"));
    assert_non_null(strstr(f->err, "not a directory"));

    /* a root under a file */
    snprintf(root, sizeof(root), "%s/bad/tmp/store", f->root);
    assert_int_equal(oci_store_prepare(root, f->err, sizeof(f->err)),
                     OCI_EIO);
    assert_non_null(strstr(f->err, "mkdir(\""));
    assert_non_null(strstr(f->err, "Not a directory"));
}


static gid_t
file_gid(const char *path)
{
    struct stat  st;

    assert_int_equal(stat(path, &st), 0);

    return st.st_gid;
}


/* A group other than the effective one that this process may give its
 * files: any for root, else a supplementary group; -1 if none. */
static long
other_group(void)
{
    gid_t  groups[256];
    int    i, n;

    if (geteuid() == 0) {
        return (long) getegid() + 1;
    }

    n = getgroups(256, groups);

    for (i = 0; i < n; i++) {
        if (groups[i] != getegid()) {
            return (long) groups[i];
        }
    }

    return -1;
}


/*
 * oci_store_share(): the fixed directories get the modes (tmp/ group
 * writable), bits a store had stay; with a group not the process's own,
 * that group and set-group-ID, which what is made later inherits, even
 * under a umask that would take the group's bits away.
 */
static void
test_share(void **state)
{
    fixture_t         *f = *state;
    oci_tag_record_t   rec;
    char               tmp[OCI_PATH_MAX], dir[OCI_PATH_MAX];
    mode_t             old;
    long               gid;
    int                fd;

    /* the process's own group: modes only, no set-group-ID */
    snprintf(f->path, sizeof(f->path), "%s/sha256", f->root);
    assert_int_equal(chmod(f->path, 0755), 0);
    assert_int_equal(oci_store_share(f->root, (long) getegid(), f->err,
                                     sizeof(f->err)), OCI_OK);
    assert_int_equal(file_mode(f->path), 0755);
    snprintf(f->path, sizeof(f->path), "%s/tmp", f->root);
    assert_int_equal(file_mode(f->path), 0770);
    snprintf(f->path, sizeof(f->path), "%s/tags", f->root);
    assert_int_equal(file_mode(f->path), 0750);

    /* unchanged when nothing is missing, whatever the group (-1) */
    assert_int_equal(oci_store_share(f->root, -1, f->err, sizeof(f->err)),
                     OCI_OK);
    assert_int_equal(file_mode(f->path), 0750);

    gid = other_group();
    if (gid < 0) {
        /* no group to give: the rest needs root or a supplementary one */
        return;
    }

    assert_int_equal(oci_store_share(f->root, gid, f->err, sizeof(f->err)),
                     OCI_OK);
    assert_int_equal(file_gid(f->root), (gid_t) gid);
    assert_int_equal(file_mode(f->root) & S_ISGID, S_ISGID);
    assert_int_equal(file_mode(f->path), 02750);
    snprintf(f->path, sizeof(f->path), "%s/tmp", f->root);
    assert_int_equal(file_mode(f->path), 02770);
    assert_int_equal(file_gid(f->path), (gid_t) gid);
    snprintf(f->path, sizeof(f->path), "%s/sha256", f->root);
    assert_int_equal(file_mode(f->path), 02755);
    snprintf(f->path, sizeof(f->path), "%s/" OCI_STORE_MARKER, f->root);
    assert_int_equal(file_gid(f->path), (gid_t) gid);
    assert_int_equal(file_mode(f->path), 0640);

    /* made later, under a umask that leaves the group nothing: the
     * group is inherited, the modes are the store's */
    old = umask(077);

    fd = oci_store_tmp_create(f->root, tmp, sizeof(tmp));
    assert_true(fd >= 0);
    assert_int_equal(file_gid(tmp), (gid_t) gid);
    assert_int_equal(file_mode(tmp), 0640);
    assert_int_equal(oci_store_commit(f->root, tmp, fd, HEX64, 0), OCI_OK);
    close(fd);

    memset(&rec, 0, sizeof(rec));
    snprintf(rec.digest, sizeof(rec.digest), "%s", DIGEST);
    snprintf(rec.media_type, sizeof(rec.media_type), "%s",
             OCI_MT_OCI_MANIFEST);
    rec.size = 5;
    assert_int_equal(oci_tag_record_write(f->root, "docker.io",
                                          "library/nginx", "1", &rec, 0),
                     OCI_OK);

    umask(old);

    assert_int_equal(oci_store_blob_path(f->root, HEX64, f->path,
                                         sizeof(f->path)), OCI_OK);
    assert_int_equal(file_gid(f->path), (gid_t) gid);
    assert_int_equal(file_mode(f->path), 0640);
    snprintf(dir, sizeof(dir), "%s/sha256/01", f->root);
    assert_int_equal(file_gid(dir), (gid_t) gid);
    assert_int_equal(file_mode(dir), 02750);

    snprintf(dir, sizeof(dir), "%s/tags/docker.io/library", f->root);
    assert_int_equal(file_gid(dir), (gid_t) gid);
    assert_int_equal(file_mode(dir), 02750);
    snprintf(f->path, sizeof(f->path), "%s/tags/docker.io/library/nginx/@1",
             f->root);
    assert_int_equal(file_gid(f->path), (gid_t) gid);
    assert_int_equal(file_mode(f->path), 0640);

    /* a store that is gone: the path and the call */
    snprintf(dir, sizeof(dir), "%s/gone", f->root);
    assert_int_equal(oci_store_share(dir, gid, f->err, sizeof(f->err)),
                     OCI_EIO);
    assert_non_null(strstr(f->err, "stat(\""));
    assert_non_null(strstr(f->err, "/gone\""));
}


/* oci_write_all(): at the position, at an offset, and a bad fd. */
static void
test_write_all(void **state)
{
    fixture_t  *f = *state;
    char        tmp[OCI_PATH_MAX], buf[128];
    int         fd;

    fd = oci_store_tmp_create(f->root, tmp, sizeof(tmp));
    assert_true(fd >= 0);

    assert_int_equal(oci_write_all(fd, "hello world", 11, -1), 0);
    assert_int_equal(oci_write_all(fd, "W", 1, 6), 0);
    assert_int_equal(oci_write_all(fd, "", 0, -1), 0);
    read_file(tmp, buf, sizeof(buf));
    assert_string_equal(buf, "hello World");

    close(fd);
    errno = 0;
    assert_int_equal(oci_write_all(fd, "x", 1, -1), -1);
    assert_int_equal(errno, EBADF);
    unlink(tmp);
}


static void
test_tmp_commit(void **state)
{
    fixture_t  *f = *state;
    char        tmp[OCI_PATH_MAX], buf[128], prefix[128];
    int         fd, fd2;

    fd = oci_store_tmp_create(f->root, tmp, sizeof(tmp));
    assert_true(fd >= 0);
    snprintf(prefix, sizeof(prefix), "%s/tmp/", f->root);
    assert_memory_equal(tmp, prefix, strlen(prefix));
    assert_int_equal(file_mode(tmp), 0640);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(write(fd, "hello", 5), 5);

    /* a reader that opened the temp file keeps it across the rename */
    fd2 = open(tmp, O_RDONLY);
    assert_true(fd2 >= 0);

    assert_int_equal(oci_store_commit(f->root, tmp, fd, HEX64, 1), OCI_OK);
    assert_int_equal(access(tmp, F_OK), -1);

    assert_int_equal(oci_store_blob_path(f->root, HEX64, f->path,
                                         sizeof(f->path)), OCI_OK);
    read_file(f->path, buf, sizeof(buf));
    assert_string_equal(buf, "hello");
    assert_int_equal(file_mode(f->path), 0640);

    assert_int_equal(pread(fd2, buf, 5, 0), 5);
    assert_memory_equal(buf, "hello", 5);
    close(fd2);
    close(fd);

    /* committing the same blob again only drops the temp file */
    fd = oci_store_tmp_create(f->root, tmp, sizeof(tmp));
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "other", 5), 5);
    assert_int_equal(oci_store_commit(f->root, tmp, fd, HEX64, 0), OCI_OK);
    close(fd);
    assert_int_equal(access(tmp, F_OK), -1);
    read_file(f->path, buf, sizeof(buf));
    assert_string_equal(buf, "hello");

    /* without fsync, with fd -1 */
    fd = oci_store_tmp_create(f->root, tmp, sizeof(tmp));
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(oci_store_commit(f->root, tmp, -1, HEX64B, 1), OCI_OK);
    assert_int_equal(oci_store_blob_path(f->root, HEX64B, f->path,
                                         sizeof(f->path)), OCI_OK);
    assert_int_equal(access(f->path, F_OK), 0);

    /* a bad hex or a missing temp file fails */
    assert_int_equal(oci_store_commit(f->root, tmp, -1, "../x", 0), OCI_EIO);
    strcpy(buf, HEX64);
    buf[0] = 'f';
    assert_int_equal(oci_store_commit(f->root, tmp, -1, buf, 0), OCI_EIO);
    assert_int_equal(errno, ENOENT);
}


static void
test_sweep(void **state)
{
    fixture_t  *f = *state;
    char        tmp[OCI_PATH_MAX];
    int         fd, i;

    assert_int_equal(oci_store_sweep(f->root), 0);

    for (i = 0; i < 3; i++) {
        fd = oci_store_tmp_create(f->root, tmp, sizeof(tmp));
        assert_true(fd >= 0);
        close(fd);
    }

    /* a directory in tmp/ is not a temp file: left alone */
    snprintf(f->path, sizeof(f->path), "%s/tmp/subdir", f->root);
    assert_int_equal(mkdir(f->path, 0755), 0);

    assert_int_equal(oci_store_sweep(f->root), 3);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(access(f->path, F_OK), 0);
    assert_int_equal(oci_store_sweep(f->root), 0);

    /* no tmp/ at all: nothing to do */
    rmdir(f->path);
    snprintf(f->path, sizeof(f->path), "%s/tmp", f->root);
    assert_int_equal(rmdir(f->path), 0);
    assert_int_equal(oci_store_sweep(f->root), 0);
    assert_int_equal(oci_store_tmp_create(f->root, tmp, sizeof(tmp)),
                     OCI_EIO);
}


static void
test_types(void **state)
{
    fixture_t  *f = *state;
    char        out[OCI_MEDIA_TYPE_MAX + 1];
    char        small[10];

    assert_int_equal(oci_store_type_read(f->root, HEX64, out, sizeof(out)),
                     OCI_ENOENT);

    assert_int_equal(oci_store_type_write(f->root, HEX64, OCI_MT_OCI_INDEX,
                                          1), OCI_OK);
    assert_int_equal(oci_store_type_read(f->root, HEX64, out, sizeof(out)),
                     OCI_OK);
    assert_string_equal(out, OCI_MT_OCI_INDEX);

    assert_int_equal(oci_store_type_path(f->root, HEX64, f->path,
                                         sizeof(f->path)), OCI_OK);
    read_file(f->path, out, sizeof(out));
    assert_string_equal(out, OCI_MT_OCI_INDEX "\n");
    assert_int_equal(file_mode(f->path), 0640);

    assert_int_equal(oci_store_type_read(f->root, HEX64, small,
                                         sizeof(small)), OCI_ERANGE);

    assert_int_equal(oci_store_type_write(f->root, HEX64, "bad type", 0),
                     OCI_EINVAL);
    assert_int_equal(oci_store_type_write(f->root, "zz", "a/b", 0),
                     OCI_EINVAL);

    write_file(f->path, "a/b");                 /* no newline */
    assert_int_equal(oci_store_type_read(f->root, HEX64, out, sizeof(out)),
                     OCI_EINVAL);
    write_file(f->path, "not a type\n");
    assert_int_equal(oci_store_type_read(f->root, HEX64, out, sizeof(out)),
                     OCI_EINVAL);
    write_file(f->path, "");
    assert_int_equal(oci_store_type_read(f->root, HEX64, out, sizeof(out)),
                     OCI_EINVAL);
}


static void
test_record_format(void **state)
{
    oci_tag_record_t  rec, back;
    char              buf[512];
    const char       *line;

    memset(&rec, 0, sizeof(rec));
    strcpy(rec.digest, DIGEST);
    rec.size = 1234;
    strcpy(rec.media_type, OCI_MT_DOCKER_LIST);
    rec.fetched_at = 1700000000;

    line = DIGEST " 1234 " OCI_MT_DOCKER_LIST " 1700000000\n";
    assert_int_equal(oci_tag_record_format(&rec, buf, sizeof(buf)),
                     (int) strlen(line));
    assert_string_equal(buf, line);

    assert_int_equal(oci_tag_record_parse(buf, strlen(buf), &back), OCI_OK);
    assert_string_equal(back.digest, DIGEST);
    assert_true(back.size == 1234);
    assert_string_equal(back.media_type, OCI_MT_DOCKER_LIST);
    assert_true(back.fetched_at == 1700000000);

    assert_int_equal(oci_tag_record_format(&rec, buf, strlen(line)),
                     OCI_ERANGE);

    rec.size = -1;
    assert_int_equal(oci_tag_record_format(&rec, buf, sizeof(buf)),
                     OCI_EINVAL);
    rec.size = 0;
    strcpy(rec.digest, "sha256:abc");
    assert_int_equal(oci_tag_record_format(&rec, buf, sizeof(buf)),
                     OCI_EINVAL);
}


static void
test_record_corrupt(void **state)
{
    static const char *const  bad[] = {
        "",
        "\n",
        DIGEST " 1 a/b 2",                   /* truncated: no newline */
        DIGEST " 1 a/b 2\n\n",
        DIGEST " 1 a/b 2\nx",
        DIGEST " 1 a/b\n",
        DIGEST " 1 a/b 2 3\n",
        DIGEST "  1 a/b 2\n",
        DIGEST " -1 a/b 2\n",
        DIGEST " 01 a/b 2\n",
        DIGEST " 1x a/b 2\n",
        DIGEST " 1 ab 2\n",
        DIGEST " 1 a/b -2\n",
        DIGEST " 1 a/b 99999999999999999999\n",
        "sha256:0123 1 a/b 2\n",
        "sha512:" HEX64 HEX64 " 1 a/b 2\n",
        "SHA256:" HEX64 " 1 a/b 2\n",
    };

    oci_tag_record_t  rec;
    size_t            i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (oci_tag_record_parse(bad[i], strlen(bad[i]), &rec)
            != OCI_EINVAL)
        {
            fail_msg("accepted: \"%s\"", bad[i]);
        }
    }

    assert_int_equal(oci_tag_record_parse(DIGEST " 0 a/b 0\n",
                                          strlen(DIGEST) + 9, &rec), OCI_OK);
}


static void
test_record_files(void **state)
{
    fixture_t         *f = *state;
    oci_tag_record_t   rec, back;
    char               dir[256];
    DIR               *d;
    struct dirent     *de;
    int                n;

    memset(&rec, 0, sizeof(rec));
    strcpy(rec.digest, DIGEST);
    rec.size = 99;
    strcpy(rec.media_type, OCI_MT_OCI_MANIFEST);
    rec.fetched_at = 42;

    assert_int_equal(oci_tag_record_read(f->root, "docker.io",
                                         "library/nginx", "latest", &back),
                     OCI_ENOENT);

    assert_int_equal(oci_tag_record_write(f->root, "docker.io",
                                          "library/nginx", "latest", &rec,
                                          1), OCI_OK);
    memset(&back, 0, sizeof(back));
    assert_int_equal(oci_tag_record_read(f->root, "docker.io",
                                         "library/nginx", "latest", &back),
                     OCI_OK);
    assert_string_equal(back.digest, DIGEST);
    assert_true(back.size == 99);
    assert_string_equal(back.media_type, OCI_MT_OCI_MANIFEST);
    assert_true(back.fetched_at == 42);

    /* overwrite */
    rec.fetched_at = 43;
    assert_int_equal(oci_tag_record_write(f->root, "docker.io",
                                          "library/nginx", "latest", &rec,
                                          0), OCI_OK);
    assert_int_equal(oci_tag_record_read(f->root, "docker.io",
                                         "library/nginx", "latest", &back),
                     OCI_OK);
    assert_true(back.fetched_at == 43);

    /* only the record is left in its directory, mode 0640 */
    snprintf(dir, sizeof(dir), "%s/tags/docker.io/library/nginx", f->root);
    d = opendir(dir);
    assert_non_null(d);
    n = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.') {
            assert_string_equal(de->d_name, "@latest");
            n++;
        } else {
            assert_true(strcmp(de->d_name, ".") == 0
                        || strcmp(de->d_name, "..") == 0);
        }
    }
    closedir(d);
    assert_int_equal(n, 1);
    assert_int_equal(file_mode(dir), 0750);
    snprintf(f->path, sizeof(f->path), "%s/@latest", dir);
    assert_int_equal(file_mode(f->path), 0640);

    /* corrupt: EINVAL */
    write_file(f->path, DIGEST " 99 " OCI_MT_OCI_MANIFEST);
    assert_int_equal(oci_tag_record_read(f->root, "docker.io",
                                         "library/nginx", "latest", &back),
                     OCI_EINVAL);
    write_file(f->path, "garbage\n");
    assert_int_equal(oci_tag_record_read(f->root, "docker.io",
                                         "library/nginx", "latest", &back),
                     OCI_EINVAL);

    /* over-long file: EINVAL, not a truncated parse */
    {
        char  big[2048];

        memset(big, ' ', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        memcpy(big, DIGEST " 1 a/b 2\n", strlen(DIGEST) + 9);
        write_file(f->path, big);
        assert_int_equal(oci_tag_record_read(f->root, "docker.io",
                                             "library/nginx", "latest",
                                             &back), OCI_EINVAL);
    }

    /* bad names are refused before any path is built */
    assert_int_equal(oci_tag_record_write(f->root, "docker.io", "../x",
                                          "latest", &rec, 0), OCI_EINVAL);
    assert_int_equal(oci_tag_record_read(f->root, "docker.io", "a",
                                         "lat/est", &back), OCI_EINVAL);
}


/* The fetcher's cached answers: paths, atomic replace, age. */
static void
test_cache_files(void **state)
{
    fixture_t    *f = *state;
    char          path[OCI_PATH_MAX], other[OCI_PATH_MAX], tmp[256];
    char         *text;
    size_t        len;
    long long     mtime;
    struct stat   st;
    DIR          *d;
    struct dirent *de;

    assert_int_equal(oci_store_taglist_path("/s/", "ghcr.io", "org/app",
                                            path, sizeof(path)), OCI_OK);
    assert_string_equal(path, "/s/taglists/ghcr.io/org/app/@list");
    assert_int_equal(oci_store_referrers_path("/s", "localhost:5000",
                                              "org/app", HEX64, path,
                                              sizeof(path)), OCI_OK);
    assert_string_equal(path,
                        "/s/referrers/localhost:5000/org/app/@" HEX64);

    /* only checked parts make a path */
    assert_int_equal(oci_store_taglist_path("/s", "ghcr.io", "../x", path,
                                            sizeof(path)), OCI_EINVAL);
    assert_int_equal(oci_store_taglist_path("/s", "Bad Host", "a", path,
                                            sizeof(path)), OCI_EINVAL);
    assert_int_equal(oci_store_referrers_path("/s", "ghcr.io", "a",
                                              "ABCDEF", path, sizeof(path)),
                     OCI_EINVAL);
    assert_int_equal(oci_store_referrers_path("/s", "ghcr.io", "a", NULL,
                                              path, sizeof(path)),
                     OCI_EINVAL);
    assert_int_equal(oci_store_taglist_path("/s", "ghcr.io", "a", path, 20),
                     OCI_ERANGE);

    /* a list of "a/b" and one of "a/b/c" live side by side */
    assert_int_equal(oci_store_taglist_path(f->root, "ghcr.io", "a/b", path,
                                            sizeof(path)), OCI_OK);
    assert_int_equal(oci_store_taglist_path(f->root, "ghcr.io", "a/b/c",
                                            other, sizeof(other)), OCI_OK);

    assert_int_equal(oci_store_cache_read(path, 100, &text, &len, &mtime),
                     OCI_ENOENT);

    assert_int_equal(oci_store_cache_write(f->root, path, "{\"x\":1}", 7, 1),
                     OCI_OK);
    assert_int_equal(oci_store_cache_write(f->root, other, "[]", 2, 0),
                     OCI_OK);

    assert_int_equal(oci_store_cache_read(path, 100, &text, &len, &mtime),
                     OCI_OK);
    assert_int_equal(len, 7);
    assert_string_equal(text, "{\"x\":1}");
    assert_int_equal(stat(path, &st), 0);
    assert_true(mtime == (long long) st.st_mtime);
    assert_int_equal(file_mode(path), 0640);
    free(text);

    /* replaced whole */
    assert_int_equal(oci_store_cache_write(f->root, path, "{}", 2, 0),
                     OCI_OK);
    assert_int_equal(oci_store_cache_read(path, 100, &text, &len, &mtime),
                     OCI_OK);
    assert_string_equal(text, "{}");
    free(text);

    /* an empty file is read as empty */
    assert_int_equal(oci_store_cache_write(f->root, path, "", 0, 0), OCI_OK);
    assert_int_equal(oci_store_cache_read(path, 100, &text, &len, &mtime),
                     OCI_OK);
    assert_int_equal(len, 0);
    assert_string_equal(text, "");
    free(text);

    /* over the bound: refused, nothing allocated */
    assert_int_equal(oci_store_cache_read(other, 1, &text, &len, &mtime),
                     OCI_ERANGE);
    assert_int_equal(oci_store_cache_read(other, 2, &text, &len, &mtime),
                     OCI_OK);
    assert_string_equal(text, "[]");
    free(text);

    /* no temp file is left behind */
    snprintf(tmp, sizeof(tmp), "%s/tmp", f->root);
    d = opendir(tmp);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        assert_true(de->d_name[0] == '.');
    }
    closedir(d);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test_setup_teardown(test_prepare, setup, teardown),
        cmocka_unit_test_setup_teardown(test_share, setup_prepared,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_all, setup_prepared,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tmp_commit, setup_prepared,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sweep, setup_prepared,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_types, setup_prepared,
                                        teardown),
        cmocka_unit_test(test_record_format),
        cmocka_unit_test(test_record_corrupt),
        cmocka_unit_test_setup_teardown(test_record_files, setup_prepared,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cache_files, setup_prepared,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
