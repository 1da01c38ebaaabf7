/*
 * ocimirrorctl du: the store measured from its files (see octl_du.h).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci_image.h"
#include "oci_ref.h"
#include "oci_store.h"
#include "octl_du.h"
#include "octl_fmt.h"


#define OCTL_DU_TABLE_MIN   4096       /* slots: a power of two */
#define OCTL_DU_DEPTH_MAX   2          /* an index, its children, theirs */
#define OCTL_DU_RECORD_MAX  1024       /* a tag record's bytes, at most */
#define OCTL_DU_NAME_WIDTH  28         /* the names' column, at least */

/* A digest the tag records reach. */
struct octl_du_entry_s {
    unsigned char  md[OCI_SHA256_HEX_LEN / 2];
    long long      bytes;              /* on disk; -1: not stored */
    uint32_t       registry;           /* the generations that counted */
    uint32_t       repo;               /* it: once in each */
    uint32_t       image;
    uint8_t        used;               /* the slot is taken */
    uint8_t        reached;            /* counted in the reachable set */
};

/* What one image (a tag record) adds up to, while it is walked. */
typedef struct {
    long long  bytes;
    size_t     stored;
    size_t     named;
    size_t     registry;
    size_t     repo;
} octl_du_acc_t;


static int
octl_du_hex_md(const char *hex, unsigned char *md)
{
    size_t  i;
    int     hi, lo;

    for (i = 0; i < OCI_SHA256_HEX_LEN; i += 2) {
        hi = hex[i] >= '0' && hex[i] <= '9' ? hex[i] - '0'
             : hex[i] >= 'a' && hex[i] <= 'f' ? hex[i] - 'a' + 10 : -1;
        lo = hex[i + 1] >= '0' && hex[i + 1] <= '9' ? hex[i + 1] - '0'
             : hex[i + 1] >= 'a' && hex[i + 1] <= 'f' ? hex[i + 1] - 'a' + 10
             : -1;

        if (hi < 0 || lo < 0) {
            return OCI_EINVAL;
        }

        md[i / 2] = (unsigned char) (hi << 4 | lo);
    }

    return hex[OCI_SHA256_HEX_LEN] == '\0' ? OCI_OK : OCI_EINVAL;
}


/* sha256 is uniform already: its first bytes are the hash */
static size_t
octl_du_slot(const octl_du_t *du, const unsigned char *md)
{
    uint64_t  h;

    memcpy(&h, md, sizeof(h));

    return (size_t) h & (du->table_size - 1);
}


static octl_du_entry_t *
octl_du_find(const octl_du_t *du, const unsigned char *md)
{
    octl_du_entry_t  *e;
    size_t            i;

    if (du->table_size == 0) {
        return NULL;
    }

    for (i = octl_du_slot(du, md); ; i = (i + 1) & (du->table_size - 1)) {
        e = &du->table[i];

        if (!e->used) {
            return NULL;
        }

        if (memcmp(e->md, md, sizeof(e->md)) == 0) {
            return e;
        }
    }
}


/* Double the table (or make the first one), keeping every entry. */
static int
octl_du_grow(octl_du_t *du)
{
    octl_du_entry_t  *old, *e;
    size_t            old_size, i, j;

    old = du->table;
    old_size = du->table_size;

    du->table_size = old_size == 0 ? OCTL_DU_TABLE_MIN : old_size * 2;
    du->table = calloc(du->table_size, sizeof(octl_du_entry_t));

    if (du->table == NULL) {
        du->table = old;
        du->table_size = old_size;
        return OCI_ENOMEM;
    }

    for (i = 0; i < old_size; i++) {
        if (!old[i].used) {
            continue;
        }

        for (j = octl_du_slot(du, old[i].md); du->table[j].used;
             j = (j + 1) & (du->table_size - 1))
        {
            /* void */
        }

        e = &du->table[j];
        *e = old[i];
    }

    free(old);

    return OCI_OK;
}


/*
 * The entry of hex, added (and its file looked at) if new; NULL when out
 * of memory or hex is no digest.  The pointer is good until the next
 * call (the table may grow).
 */
static octl_du_entry_t *
octl_du_entry(octl_du_t *du, const char *hex)
{
    octl_du_entry_t  *e;
    unsigned char     md[OCI_SHA256_HEX_LEN / 2];
    struct stat       st;
    char              rel[96];
    size_t            i;

    if (octl_du_hex_md(hex, md) != OCI_OK) {
        return NULL;
    }

    e = octl_du_find(du, md);
    if (e != NULL) {
        return e;
    }

    /* at most 70% full: short probes */
    if ((du->table_used + 1) * 10 > du->table_size * 7
        && octl_du_grow(du) != OCI_OK)
    {
        return NULL;
    }

    for (i = octl_du_slot(du, md); du->table[i].used;
         i = (i + 1) & (du->table_size - 1))
    {
        /* void */
    }

    e = &du->table[i];
    memcpy(e->md, md, sizeof(md));
    e->used = 1;
    du->table_used++;

    snprintf(rel, sizeof(rel), "sha256/%.2s/%s", hex, hex);

    e->bytes = fstatat(du->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0
               && S_ISREG(st.st_mode) ? (long long) st.st_blocks * 512 : -1;

    return e;
}


/* e belongs to the image being walked: count it wherever it was not
 * counted yet.  0 if it was counted in this image already. */
static int
octl_du_count(octl_du_t *du, octl_du_entry_t *e, octl_du_acc_t *acc)
{
    octl_du_group_t  *g;

    if (e->image == du->gen_image) {
        return 0;
    }

    e->image = du->gen_image;
    acc->named++;

    if (e->bytes < 0) {
        return 1;
    }

    acc->stored++;
    acc->bytes += e->bytes;

    if (e->repo != du->gen_repo) {
        e->repo = du->gen_repo;
        g = &du->repos[acc->repo];
        g->bytes += e->bytes;
        g->files++;
    }

    if (e->registry != du->gen_registry) {
        e->registry = du->gen_registry;
        g = &du->registries[acc->registry];
        g->bytes += e->bytes;
        g->files++;
    }

    e->reached = 1;

    return 1;
}


static int
octl_du_blob(octl_du_t *du, const char *digest, octl_du_acc_t *acc)
{
    octl_du_entry_t  *e;
    char              hex[OCI_SHA256_HEX_LEN + 1];

    if (oci_digest_parse(digest, strlen(digest), hex) != OCI_OK) {
        return OCI_OK;              /* not a sha256 descriptor: not ours */
    }

    e = octl_du_entry(du, hex);
    if (e == NULL) {
        return OCI_ENOMEM;
    }

    octl_du_count(du, e, acc);

    return OCI_OK;
}


/* The manifest hex and what it names that is stored. */
static int
octl_du_manifest(octl_du_t *du, const char *hex, int depth,
    octl_du_acc_t *acc)
{
    octl_du_entry_t  *e;
    oci_image_t       img;
    char              child[OCI_SHA256_HEX_LEN + 1];
    size_t            i;
    int               rc;

    e = octl_du_entry(du, hex);
    if (e == NULL) {
        return OCI_ENOMEM;
    }

    /* counted already in this image (an index naming a child twice) */
    if (!octl_du_count(du, e, acc) || e->bytes < 0) {
        return OCI_OK;
    }

    rc = oci_image_read(du->root, hex, &img);

    if (rc == OCI_ENOMEM) {
        return rc;
    }

    if (rc != OCI_OK) {
        return OCI_OK;              /* no types/ line, or not a manifest:
                                       the file alone */
    }

    rc = OCI_OK;

    if (img.kind == OCI_IMAGE_MANIFEST) {
        if (img.config.digest[0] != '\0') {
            rc = octl_du_blob(du, img.config.digest, acc);
        }

        for (i = 0; i < img.n && rc == OCI_OK; i++) {
            rc = octl_du_blob(du, img.items[i].digest, acc);
        }

    } else if (img.kind == OCI_IMAGE_INDEX && depth < OCTL_DU_DEPTH_MAX) {
        for (i = 0; i < img.n && rc == OCI_OK; i++) {
            if (oci_digest_parse(img.items[i].digest,
                                 strlen(img.items[i].digest), child)
                != OCI_OK)
            {
                continue;
            }

            e = octl_du_entry(du, child);
            if (e == NULL) {
                rc = OCI_ENOMEM;
                break;
            }

            /* the platforms nobody pulled are no part of what is held */
            if (e->bytes >= 0) {
                rc = octl_du_manifest(du, child, depth + 1, acc);
            }
        }
    }

    oci_image_free(&img);

    return rc;
}


static int
octl_du_top_cmp(const octl_du_image_t *a, long long bytes, const char *ref)
{
    if (a->bytes != bytes) {
        return a->bytes > bytes ? -1 : 1;
    }

    return strcmp(a->ref, ref);
}


/* Keep the image among the largest top_max. */
static int
octl_du_top_add(octl_du_t *du, const char *ref, const octl_du_acc_t *acc)
{
    octl_du_image_t  *t;
    size_t            lo, hi, mid;
    char             *copy;

    if (du->top_max == 0) {
        return OCI_OK;
    }

    if (du->n_top == du->top_max
        && octl_du_top_cmp(&du->top[du->n_top - 1], acc->bytes, ref) <= 0)
    {
        return OCI_OK;
    }

    copy = strdup(ref);
    if (copy == NULL) {
        return OCI_ENOMEM;
    }

    if (du->n_top == du->top_max) {
        du->n_top--;
        free(du->top[du->n_top].ref);
    }

    lo = 0;
    hi = du->n_top;

    while (lo < hi) {
        mid = (lo + hi) / 2;

        if (octl_du_top_cmp(&du->top[mid], acc->bytes, ref) < 0) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    memmove(&du->top[lo + 1], &du->top[lo],
            (du->n_top - lo) * sizeof(octl_du_image_t));

    t = &du->top[lo];
    t->ref = copy;
    t->bytes = acc->bytes;
    t->stored = acc->stored;
    t->named = acc->named;
    du->n_top++;

    return OCI_OK;
}


/* A new group named name (copied) at the end of *v. */
static int
octl_du_group_add(octl_du_group_t **v, size_t *n, size_t *cap,
    const char *name, size_t registry)
{
    octl_du_group_t  *g;
    size_t            ncap;

    if (*n == *cap) {
        ncap = *cap == 0 ? 16 : *cap * 2;
        g = realloc(*v, ncap * sizeof(octl_du_group_t));

        if (g == NULL) {
            return OCI_ENOMEM;
        }

        *v = g;
        *cap = ncap;
    }

    g = &(*v)[*n];
    memset(g, 0, sizeof(octl_du_group_t));
    g->registry = registry;
    g->name = strdup(name);

    if (g->name == NULL) {
        return OCI_ENOMEM;
    }

    (*n)++;

    return OCI_OK;
}


/* The tag record "@tag" in the directory dfd of repository repo. */
static int
octl_du_record(octl_du_t *du, int dfd, const char *file, const char *repo,
    octl_du_acc_t *acc)
{
    oci_tag_record_t  rec;
    char              buf[OCTL_DU_RECORD_MAX];
    char              hex[OCI_SHA256_HEX_LEN + 1];
    char              ref[OCI_HOST_MAX + OCI_NAME_MAX + OCI_TAG_MAX + 4];
    ssize_t           n;
    int               fd, rc;

    du->tags++;

    fd = openat(dfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd == -1) {
        du->bad_records++;
        return OCI_OK;
    }

    n = read(fd, buf, sizeof(buf));
    close(fd);

    if (n <= 0
        || oci_tag_record_parse(buf, (size_t) n, &rec) != OCI_OK
        || oci_digest_parse(rec.digest, strlen(rec.digest), hex) != OCI_OK)
    {
        du->bad_records++;
        return OCI_OK;
    }

    du->repos[acc->repo].tags++;
    du->registries[acc->registry].tags++;

    du->gen_image++;
    acc->bytes = 0;
    acc->stored = 0;
    acc->named = 0;

    rc = octl_du_manifest(du, hex, 0, acc);
    if (rc != OCI_OK) {
        return rc;
    }

    snprintf(ref, sizeof(ref), "%s:%s", repo, file + 1);

    return octl_du_top_add(du, ref, acc);
}


static int
octl_du_is_dir(int dfd, const struct dirent *de, int *is_file)
{
    struct stat  st;

    if (de->d_type != DT_UNKNOWN) {
        *is_file = de->d_type == DT_REG;
        return de->d_type == DT_DIR;
    }

    if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        *is_file = 0;
        return 0;
    }

    *is_file = S_ISREG(st.st_mode);

    return S_ISDIR(st.st_mode);
}


static int
octl_du_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}


/*
 * The names of the entries of d (rewound) that are directories, sorted:
 * a malloc()ed array of malloc()ed strings.  Tag records of d go to
 * on_file as they are met, first, so that a repository's records are
 * walked before any deeper repository's.
 */
typedef int (*octl_du_file_pt)(octl_du_t *du, int dfd, const char *name,
    void *data);

static int
octl_du_list(octl_du_t *du, DIR *d, octl_du_file_pt on_file, void *data,
    char ***out, size_t *n_out)
{
    struct dirent  *de;
    char          **v, **nv;
    size_t          n, cap;
    int             is_file, rc;

    v = NULL;
    n = 0;
    cap = 0;
    rc = OCI_OK;

    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }

        if (!octl_du_is_dir(dirfd(d), de, &is_file)) {
            if (is_file && on_file != NULL) {
                rc = on_file(du, dirfd(d), de->d_name, data);
                if (rc != OCI_OK) {
                    break;
                }
            }

            continue;
        }

        if (n == cap) {
            cap = cap == 0 ? 16 : cap * 2;
            nv = realloc(v, cap * sizeof(char *));

            if (nv == NULL) {
                rc = OCI_ENOMEM;
                break;
            }

            v = nv;
        }

        v[n] = strdup(de->d_name);

        if (v[n] == NULL) {
            rc = OCI_ENOMEM;
            break;
        }

        n++;
    }

    if (rc != OCI_OK) {
        while (n > 0) {
            free(v[--n]);
        }

        free(v);
        return rc;
    }

    if (n > 1) {
        qsort(v, n, sizeof(char *), octl_du_strcmp);
    }

    *out = v;
    *n_out = n;

    return OCI_OK;
}


static void
octl_du_list_free(char **v, size_t n)
{
    while (n > 0) {
        free(v[--n]);
    }

    free(v);
}


typedef struct {
    const char     *repo;           /* "registry/name" */
    const char     *name;           /* the name alone, "" at the top */
    octl_du_acc_t  *acc;
    int             has_repo;       /* its group exists */
} octl_du_repo_walk_t;


static int
octl_du_on_record(octl_du_t *du, int dfd, const char *file, void *data)
{
    octl_du_repo_walk_t  *w = data;
    int                   rc;

    /* a name's first part never starts with '@': only records do */
    if (file[0] != '@' || w->name[0] == '\0') {
        return OCI_OK;
    }

    if (!w->has_repo) {
        rc = octl_du_group_add(&du->repos, &du->n_repos, &du->repos_cap,
                               w->repo, w->acc->registry);
        if (rc != OCI_OK) {
            return rc;
        }

        w->acc->repo = du->n_repos - 1;
        w->has_repo = 1;
        du->gen_repo++;
    }

    return octl_du_record(du, dfd, file, w->repo, w->acc);
}


/* The directory dfd (closed here) of repository repo ("registry/name",
 * the name from name_off; the registry alone at the top) and the
 * repositories under it. */
static int
octl_du_repo_dir(octl_du_t *du, int dfd, const char *repo, size_t name_off,
    octl_du_acc_t *acc)
{
    octl_du_repo_walk_t   w;
    DIR                  *d;
    char                **subs;
    char                 *sub;
    size_t                n, i, len;
    int                   fd, rc;

    d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        du->unreadable++;
        return OCI_OK;
    }

    w.repo = repo;
    w.name = strlen(repo) > name_off ? repo + name_off : "";
    w.acc = acc;
    w.has_repo = 0;

    rc = octl_du_list(du, d, octl_du_on_record, &w, &subs, &n);
    if (rc != OCI_OK) {
        closedir(d);
        return rc;
    }

    for (i = 0; i < n && rc == OCI_OK; i++) {
        fd = openat(dirfd(d), subs[i],
                    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd == -1) {
            du->unreadable++;
            continue;
        }

        len = strlen(repo) + 1 + strlen(subs[i]) + 1;
        sub = malloc(len);

        if (sub == NULL) {
            close(fd);
            rc = OCI_ENOMEM;
            break;
        }

        snprintf(sub, len, "%s/%s", repo, subs[i]);
        rc = octl_du_repo_dir(du, fd, sub, name_off, acc);
        free(sub);
    }

    octl_du_list_free(subs, n);
    closedir(d);

    return rc;
}


static int
octl_du_tags(octl_du_t *du, char *err, size_t errlen)
{
    octl_du_acc_t   acc;
    DIR            *d;
    char          **regs;
    size_t          n, i;
    int             fd, rc;

    fd = openat(du->rootfd, "tags",
                O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd == -1) {
        if (errno == ENOENT) {
            return OCI_OK;          /* nothing pulled by tag yet */
        }

        du->unreadable++;
        return OCI_OK;
    }

    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        du->unreadable++;
        return OCI_OK;
    }

    rc = octl_du_list(du, d, NULL, NULL, &regs, &n);
    if (rc != OCI_OK) {
        closedir(d);
        return rc;
    }

    memset(&acc, 0, sizeof(acc));

    /* sorted, so the registries come out in order */
    for (i = 0; i < n && rc == OCI_OK; i++) {
        fd = openat(dirfd(d), regs[i],
                    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd == -1) {
            du->unreadable++;
            continue;
        }

        rc = octl_du_group_add(&du->registries, &du->n_registries,
                               &du->registries_cap, regs[i], 0);
        if (rc != OCI_OK) {
            close(fd);
            break;
        }

        acc.registry = du->n_registries - 1;
        du->gen_registry++;

        rc = octl_du_repo_dir(du, fd, regs[i], strlen(regs[i]) + 1, &acc);
    }

    octl_du_list_free(regs, n);
    closedir(d);

    if (rc == OCI_ENOMEM) {
        snprintf(err, errlen, "out of memory");
    }

    return rc;
}


/* Every file under sha256/: reached by a tag record or not. */
static int
octl_du_blobs(octl_du_t *du)
{
    octl_du_entry_t  *e;
    struct dirent    *de, *fe;
    struct stat       st;
    unsigned char     md[OCI_SHA256_HEX_LEN / 2];
    long long         bytes;
    DIR              *d, *sub;
    int               fd;

    fd = openat(du->rootfd, "sha256",
                O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd == -1) {
        if (errno != ENOENT) {
            du->unreadable++;
        }

        return OCI_OK;
    }

    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        du->unreadable++;
        return OCI_OK;
    }

    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }

        fd = openat(dirfd(d), de->d_name,
                    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd == -1) {
            if (errno != ENOTDIR) {
                du->unreadable++;
            }

            continue;
        }

        sub = fdopendir(fd);
        if (sub == NULL) {
            close(fd);
            du->unreadable++;
            continue;
        }

        while ((fe = readdir(sub)) != NULL) {
            if (fe->d_name[0] == '.'
                || fstatat(dirfd(sub), fe->d_name, &st, AT_SYMLINK_NOFOLLOW)
                   != 0
                || !S_ISREG(st.st_mode))
            {
                continue;
            }

            bytes = (long long) st.st_blocks * 512;
            du->files++;
            du->bytes += bytes;

            e = octl_du_hex_md(fe->d_name, md) == OCI_OK
                ? octl_du_find(du, md) : NULL;

            if (e != NULL && e->reached) {
                du->reachable_files++;
                du->reachable_bytes += bytes;

            } else {
                du->unreachable_files++;
                du->unreachable_bytes += bytes;
            }
        }

        closedir(sub);
    }

    closedir(d);

    return OCI_OK;
}


/* Every file under the directory dfd (closed here), into other. */
static void
octl_du_other(octl_du_t *du, int dfd, int top)
{
    struct dirent  *de;
    struct stat     st;
    DIR            *d;
    int             fd;

    d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        du->unreadable++;
        return;
    }

    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0
            || (top && strcmp(de->d_name, "sha256") == 0)
            || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        {
            continue;
        }

        if (S_ISREG(st.st_mode)) {
            du->other_files++;
            du->other_bytes += (long long) st.st_blocks * 512;
            continue;
        }

        if (!S_ISDIR(st.st_mode)) {
            continue;
        }

        fd = openat(dirfd(d), de->d_name,
                    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd == -1) {
            du->unreadable++;
            continue;
        }

        octl_du_other(du, fd, 0);
    }

    closedir(d);
}


static int
octl_du_repo_cmp(const void *pa, const void *pb)
{
    const octl_du_group_t  *a = pa, *b = pb;

    if (a->registry != b->registry) {
        return a->registry < b->registry ? -1 : 1;
    }

    if (a->bytes != b->bytes) {
        return a->bytes > b->bytes ? -1 : 1;
    }

    return strcmp(a->name, b->name);
}


int
octl_du_walk(const char *root, size_t top, octl_du_t *du, char *err,
    size_t errlen)
{
    int  fd, rc;

    memset(du, 0, sizeof(octl_du_t));
    du->root = root;
    du->rootfd = -1;

    if (top > OCTL_DU_TOP_MAX) {
        top = OCTL_DU_TOP_MAX;
    }

    du->top_max = top;

    if (top > 0) {
        du->top = calloc(top, sizeof(octl_du_image_t));

        if (du->top == NULL) {
            snprintf(err, errlen, "out of memory");
            return OCI_ENOMEM;
        }
    }

    du->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (du->rootfd == -1) {
        snprintf(err, errlen, "cannot read the store %s: %s", root,
                 strerror(errno));
        return OCI_EIO;
    }

    rc = octl_du_tags(du, err, errlen);
    if (rc != OCI_OK) {
        return rc;
    }

    octl_du_blobs(du);

    fd = dup(du->rootfd);
    if (fd == -1) {
        snprintf(err, errlen, "dup() failed: %s", strerror(errno));
        return OCI_EIO;
    }

    /* fdopendir() owns the descriptor it reads: a copy of the root's */
    octl_du_other(du, fd, 1);

    if (du->n_repos > 1) {
        qsort(du->repos, du->n_repos, sizeof(octl_du_group_t),
              octl_du_repo_cmp);
    }

    return OCI_OK;
}


void
octl_du_free(octl_du_t *du)
{
    size_t  i;

    for (i = 0; i < du->n_registries; i++) {
        free(du->registries[i].name);
    }

    for (i = 0; i < du->n_repos; i++) {
        free(du->repos[i].name);
    }

    for (i = 0; i < du->n_top; i++) {
        free(du->top[i].ref);
    }

    free(du->registries);
    free(du->repos);
    free(du->top);
    free(du->table);

    if (du->rootfd != -1) {
        close(du->rootfd);
    }

    memset(du, 0, sizeof(octl_du_t));
    du->rootfd = -1;
}


static const char *
octl_du_s(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}


void
octl_du_print(FILE *out, const char *root, const octl_du_t *du, int exact)
{
    const octl_du_group_t  *g, *r;
    const octl_du_image_t  *t;
    char                    a[OCTL_BYTES_LEN];
    size_t                  i, j, len;
    int                     w;

    fprintf(out, "store %s\n", root);
    fprintf(out, "  blobs and manifests %8zu %-5s %12s\n", du->files,
            octl_du_s(du->files, "file", "files"),
            octl_bytes(du->bytes, exact, a, sizeof(a)));
    fprintf(out, "  reached from tags   %8zu %-5s %12s\n",
            du->reachable_files,
            octl_du_s(du->reachable_files, "file", "files"),
            octl_bytes(du->reachable_bytes, exact, a, sizeof(a)));
    fprintf(out, "  not reached         %8zu %-5s %12s  (pulled by digest, "
            "or their tags moved on)\n", du->unreachable_files,
            octl_du_s(du->unreachable_files, "file", "files"),
            octl_bytes(du->unreachable_bytes, exact, a, sizeof(a)));
    fprintf(out, "  other               %8zu %-5s %12s  (tag records, "
            "media types, lists, downloads)\n", du->other_files,
            octl_du_s(du->other_files, "file", "files"),
            octl_bytes(du->other_bytes, exact, a, sizeof(a)));
    fprintf(out, "  %zu tag record%s", du->tags,
            octl_du_s(du->tags, "", "s"));

    if (du->bad_records > 0) {
        fprintf(out, ", %zu unreadable", du->bad_records);
    }

    if (du->unreadable > 0) {
        fprintf(out, "; %zu director%s could not be read (run as root or "
                "as the fetcher's user)", du->unreadable,
                octl_du_s(du->unreadable, "y", "ies"));
    }

    fprintf(out, "\n");

    if (du->n_registries == 0) {
        return;
    }

    /* one column for the names, as wide as the longest (within reason) */
    w = OCTL_DU_NAME_WIDTH;

    for (i = 0; i < du->n_repos; i++) {
        len = strlen(du->repos[i].name) - strlen(
                  du->registries[du->repos[i].registry].name) - 1 + 2;
        if (len > (size_t) w && len <= 64) {
            w = (int) len;
        }
    }

    for (i = 0; i < du->n_registries; i++) {
        len = strlen(du->registries[i].name);
        if (len > (size_t) w && len <= 64) {
            w = (int) len;
        }
    }

    fprintf(out, "\nby registry and repository (a file counts once in "
            "each):\n");

    j = 0;

    for (i = 0; i < du->n_registries; i++) {
        g = &du->registries[i];

        for (len = 0; j + len < du->n_repos
                      && du->repos[j + len].registry == i; len++)
        {
            /* void */
        }

        fprintf(out, "  %-*s %12s  %zu repositor%s, %zu tag%s, %zu file%s\n",
                w, g->name, octl_bytes(g->bytes, exact, a, sizeof(a)), len,
                octl_du_s(len, "y", "ies"), g->tags,
                octl_du_s(g->tags, "", "s"), g->files,
                octl_du_s(g->files, "", "s"));

        for ( /* void */ ; j < du->n_repos && du->repos[j].registry == i;
             j++)
        {
            r = &du->repos[j];

            fprintf(out, "    %-*s %12s  %zu tag%s, %zu file%s\n", w - 2,
                    r->name + strlen(g->name) + 1,
                    octl_bytes(r->bytes, exact, a, sizeof(a)), r->tags,
                    octl_du_s(r->tags, "", "s"), r->files,
                    octl_du_s(r->files, "", "s"));
        }
    }

    if (du->n_top == 0) {
        return;
    }

    fprintf(out, "\nlargest images:\n");

    for (i = 0; i < du->n_top; i++) {
        t = &du->top[i];

        if (t->stored == t->named) {
            fprintf(out, "  %12s  %s  %zu file%s\n",
                    octl_bytes(t->bytes, exact, a, sizeof(a)), t->ref,
                    t->named, octl_du_s(t->named, "", "s"));

        } else {
            fprintf(out, "  %12s  %s  %zu of %zu files stored\n",
                    octl_bytes(t->bytes, exact, a, sizeof(a)), t->ref,
                    t->stored, t->named);
        }
    }
}
