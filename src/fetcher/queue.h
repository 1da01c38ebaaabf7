/*
 * An intrusive doubly-linked list, after ngx_queue_t: the links live in
 * the objects, so adding and removing never allocates, and an object can
 * be unlinked in O(1) from wherever it is.  A list head is a sentinel
 * queue_t; an unlinked node points at itself.
 */

#ifndef FETCHER_QUEUE_H
#define FETCHER_QUEUE_H

#include <stddef.h>

typedef struct queue_s  queue_t;

struct queue_s {
    queue_t  *prev;
    queue_t  *next;
};

#define queue_init(q)                                                       \
    do { (q)->prev = (q); (q)->next = (q); } while (0)

#define queue_empty(h)      ((h) == (h)->prev)
#define queue_linked(q)     ((q)->next != (q))
#define queue_head(h)       ((h)->next)
#define queue_sentinel(h)   (h)
#define queue_next(q)       ((q)->next)

#define queue_insert_tail(h, x)                                             \
    do {                                                                    \
        (x)->prev = (h)->prev;                                              \
        (x)->prev->next = (x);                                              \
        (x)->next = (h);                                                    \
        (h)->prev = (x);                                                    \
    } while (0)

#define queue_insert_head(h, x)                                             \
    do {                                                                    \
        (x)->next = (h)->next;                                              \
        (x)->next->prev = (x);                                              \
        (x)->prev = (h);                                                    \
        (h)->next = (x);                                                    \
    } while (0)

/* Unlink x and leave it pointing at itself, so queue_linked() is false
 * and a second removal is harmless. */
#define queue_remove(x)                                                     \
    do {                                                                    \
        (x)->next->prev = (x)->prev;                                        \
        (x)->prev->next = (x)->next;                                        \
        (x)->prev = (x);                                                    \
        (x)->next = (x);                                                    \
    } while (0)

#define queue_data(q, type, link)                                           \
    ((type *) ((char *) (q) - offsetof(type, link)))

#endif /* FETCHER_QUEUE_H */
