/*
 * The cmocka group setup and teardown of a test binary that runs
 * libcurl:
 *   cmocka_run_group_tests(tests, test_curl_setup, test_curl_teardown);
 */

#ifndef TEST_CURL_H
#define TEST_CURL_H

#include <curl/curl.h>


static inline int
test_curl_setup(void **state)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}


static inline int
test_curl_teardown(void **state)
{
    curl_global_cleanup();
    return 0;
}


#endif /* TEST_CURL_H */
