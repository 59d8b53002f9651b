package nl.pieper.core

import nl.pieper.core.model.*

import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.channels.BufferOverflow

/**
 * The client's events as a cold [Flow]: collecting subscribes, cancelling the
 * collector unsubscribes. Nothing but forwarding happens here.
 */
fun PieperClient.events(): Flow<PieperEvent> = callbackFlow {
    val handle = subscribe(object : EventListener {
        override fun onEvent(event: PieperEvent) {
            trySend(event)
        }
    })
    awaitClose {
        handle.cancel()
        handle.close()
    }
}.buffer(capacity = 1024, onBufferOverflow = BufferOverflow.DROP_OLDEST)
