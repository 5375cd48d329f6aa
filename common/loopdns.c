/*
 * loopdns: evdns's getaddrinfo failures in the C library's words (loopdns.h).
 */
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netdb.h>
#include <stddef.h>

#include "loopdns.h"

const char *loopdns_gai_sentence(int rc)
{
	static const struct {
		int ev, libc;
	} map[] = {
	    {EVUTIL_EAI_AGAIN, EAI_AGAIN},           {EVUTIL_EAI_FAIL, EAI_FAIL},
	    {EVUTIL_EAI_FAMILY, EAI_FAMILY},         {EVUTIL_EAI_MEMORY, EAI_MEMORY},
	    {EVUTIL_EAI_NODATA, EAI_NODATA},         {EVUTIL_EAI_NONAME, EAI_NONAME},
	    {EVUTIL_EAI_SERVICE, EAI_SERVICE},       {EVUTIL_EAI_SOCKTYPE, EAI_SOCKTYPE},
	    {EVUTIL_EAI_ADDRFAMILY, EAI_ADDRFAMILY},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (map[i].ev == rc)
			return gai_strerror(map[i].libc);
	return evutil_gai_strerror(rc);
}

static void free_later(evutil_socket_t fd, short what, void *arg)
{
	evdns_base_free(arg, 0);
}

void loopdns_free(struct event_base *base, struct evdns_base *dns, int cancelled)
{
	const struct timeval now = {0, 0};
	if (dns == NULL)
		return;
	/* when the free cannot be put off, dns is left to the exit: freed under the pending
	 * answer, it would be read after */
	if (!cancelled)
		evdns_base_free(dns, 0);
	else
		(void)event_base_once(base, -1, EV_TIMEOUT, free_later, dns, &now);
}
